"""`batchscribe serve`: the HTTP service (webhook, JSON API, web view, metrics) over the job store."""
