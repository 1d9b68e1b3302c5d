"""Events from an SQS queue (the AWS path: S3 or EventBridge -> SQS -> batchscribe worker).

A message is deleted only after its jobs are committed to the job store, so a crash in between
means the message comes back (at-least-once) and the store's object-version key absorbs it.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional
from urllib.parse import urlparse

from batchscribe.errors import OptionsError
from batchscribe.jobs.store import JobStore
from batchscribe.triggers.intake import take_message
from batchscribe.triggers.route import Route

log = logging.getLogger("batchscribe.triggers")


def sqs_client(endpoint_url: Optional[str] = None):
    import boto3

    return boto3.client("sqs", endpoint_url=endpoint_url or None)


class SqsEvents:
    """`sqs://QUEUE_NAME` or the queue's https URL."""

    def __init__(self, queue: str, route: Route, jobs: JobStore, endpoint_url: Optional[str] = None):
        self.client = sqs_client(endpoint_url)
        self.route = route
        self.jobs = jobs
        self.stop = threading.Event()
        self.quiet = threading.Event()  # the last receive found the queue empty
        parsed = urlparse(queue)
        if parsed.scheme == "sqs" and parsed.netloc:
            self.queue_url = self.client.get_queue_url(QueueName=parsed.netloc)["QueueUrl"]
        elif parsed.scheme in ("http", "https"):
            self.queue_url = queue
        else:
            raise OptionsError(f"{queue}: give the queue as sqs://QUEUE_NAME or its https:// URL")

    def poll(self, wait_seconds: int = 1) -> int:
        """Receive one round of messages; returns how many arrived."""
        reply = self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        messages = reply.get("Messages", [])
        if not messages:
            self.quiet.set()
        for message in messages:
            try:
                take_message(message["Body"], self.queue_url, self.route, self.jobs)
            except Exception:  # e.g. S3 unreachable for a HEAD: leave the message for redelivery
                log.exception("could not take a message; it will be delivered again")
                continue
            self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        if messages:
            self.quiet.clear()
        return len(messages)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll(wait_seconds=2)
            except Exception:
                log.exception("SQS receive failed")
                self.stop.wait(2)
