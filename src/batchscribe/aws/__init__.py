"""Running on AWS Batch: the container entrypoint (`batchscribe job`) and array-job backfill."""
