"""`batchscribe serve` with real jobs: two real speech files and a broken one, submitted through the
API and transcribed by a real worker (with --metrics-port); then the JSON API, the metrics of the
service and of the worker, and the web view in headless Chromium (Debian's chromium +
chromium-driver, driven by selenium): what a person sees, a transcript's text, a retry that works.

BATCHSCRIBE_SCREENSHOT=path saves the main page as seen in the browser (docs/service.png)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import LIBRISPEECH, REPO, reference, run_cli, wer
from service_client import TOKEN, get_json, request, service
from services import free_port

pytestmark = pytest.mark.e2e
FILES = [LIBRISPEECH / "1688-142285-0000.flac", LIBRISPEECH / "1688-142285-0001.flac"]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(service URL, the worker's metrics text, the input folder) after the worker finished every job."""
    folder = tmp_path_factory.mktemp("service")
    inbox = folder / "in"
    inbox.mkdir()
    for path in FILES:
        shutil.copy(path, inbox / path.name)
    (inbox / "broken.flac").write_bytes(b"fLaC" + os.urandom(3000))
    store = folder / "jobs.db"
    with service(("--input", str(inbox), "-o", str(folder / "out")), store) as url:
        status, body = request(url, "/api/jobs", json.dumps({"prefix": str(inbox)}).encode())
        assert status == 200 and json.loads(body)["queued"] == 3, body
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        command = [sys.executable, "-m", "batchscribe", "worker", "--store", str(store), "--max-attempts", "1",
                   "--metrics-port", str(port)]  # fmt: skip
        log = open(folder / "worker.log", "w")
        worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and finished(url) < 3:
                assert worker.poll() is None, (folder / "worker.log").read_text()
                time.sleep(0.5)
            worker_metrics = ""  # the worker counts a batch once its last file is recorded: wait for that
            batches = "batchscribe_batch_duration_seconds_count"
            while time.monotonic() < deadline and not metric(worker_metrics, batches):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                    worker_metrics = reply.read().decode()
                time.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            log.close()
        yield url, worker_metrics, inbox


def metric(text: str, name: str) -> float:
    """A sample's value in Prometheus' text format (0 if absent)."""
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line[:1] not in "#"}
    return values.get(name, 0.0)


def finished(url: str) -> int:
    counts = get_json(url, "/api/status")["counts"]
    return counts["succeeded"] + counts["dead"]


def job_ids(url: str, state: str) -> list[int]:
    return [job["id"] for job in get_json(url, f"/api/jobs?state={state}")["jobs"]]


def test_the_api_lists_pages_and_explains_jobs(served):
    url, _, inbox = served
    status = get_json(url, "/api/status")
    assert status["counts"] == {"queued": 0, "running": 0, "retrying": 0, "succeeded": 2, "dead": 1}
    assert status["throughput"][-1]["files"] == 2 and status["throughput"][-1]["audio_seconds"] > 20
    first = get_json(url, "/api/jobs?limit=2")
    assert len(first["jobs"]) == 2 and first["next_offset"] == 2
    assert get_json(url, "/api/jobs?limit=2&offset=2")["next_offset"] is None
    (dead,) = get_json(url, "/api/jobs?state=dead")["jobs"]
    job = get_json(url, f"/api/jobs/{dead['id']}")
    assert job["source_uri"].endswith("broken.flac") and job["attempts"] == 1 and "broken.flac" in job["last_error"]
    assert request(url, "/api/jobs/9999")[0] == 404
    again = request(url, "/api/jobs", json.dumps({"prefix": str(inbox)}).encode())
    assert json.loads(again[1]) == {"queued": 0, "known": 3, "skipped": []}
    outside = request(url, "/api/jobs", json.dumps({"uris": ["/etc/passwd", "s3://other/a.flac"]}).encode())
    assert outside[0] == 200 and len(json.loads(outside[1])["skipped"]) == 2
    paths = get_json(url, "/openapi.json")["paths"]
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/transcript", "/api/status", "/healthz"} <= set(paths)


def test_transcripts_come_in_every_format(served):
    url = served[0]
    done = job_ids(url, "succeeded")
    texts = {fmt: request(url, f"/api/jobs/{done[0]}/transcript?format={fmt}") for fmt in ("txt", "srt", "vtt", "json")}
    assert all(status == 200 for status, _ in texts.values())
    assert texts["vtt"][1].startswith(b"WEBVTT") and b" --> " in texts["srt"][1]
    assert json.loads(texts["json"][1])["text"].split() == texts["txt"][1].decode().split()
    assert request(url, f"/api/jobs/{job_ids(url, 'dead')[0]}/transcript")[0] == 404


def test_metrics_of_the_service_and_of_the_worker(served):
    url, worker, _ = served
    status, body = request(url, "/metrics")
    service_metrics = body.decode()
    assert status == 200 and 'batchscribe_jobs{state="succeeded"} 2.0' in service_metrics
    assert 'batchscribe_http_requests_total{code="200",method="POST",route="/api/jobs"}' in service_metrics
    assert (
        "batchscribe_jobs_succeeded_total 2.0" in worker
        and 'batchscribe_jobs_failed_total{reason="audio"} 1.0' in worker
    )
    assert metric(worker, "batchscribe_audio_transcribed_seconds_total") > 20
    assert metric(worker, "batchscribe_model_load_seconds") > 0
    assert metric(worker, "batchscribe_file_duration_seconds_count") == 2
    assert metric(worker, "batchscribe_batch_duration_seconds_count") >= 1
    assert 'batchscribe_jobs{state="dead"} 1.0' in worker


def test_serve_refuses_a_public_address_without_a_token_and_loads_no_engine(tmp_path):
    env_token = os.environ.pop("BATCHSCRIBE_TOKEN", None)
    try:
        refused = run_cli("serve", "--input", str(tmp_path), "-o", str(tmp_path), "--host", "0.0.0.0")
        short = tmp_path / "token"
        short.write_text("short\n")
        weak = run_cli("serve", "--input", str(tmp_path), "-o", str(tmp_path), "--token-file", str(short))
    finally:
        if env_token is not None:
            os.environ["BATCHSCRIBE_TOKEN"] = env_token
    assert refused.returncode == 2 and "BATCHSCRIBE_TOKEN" in refused.stderr
    assert weak.returncode == 2 and "at least 16 characters" in weak.stderr
    probe = ("import sys; from batchscribe.cli import build_parser; build_parser(); "
             "from batchscribe.service.app import create_app; "
             "print(sorted(set(sys.modules) & {'ctranslate2', 'torch', 'av', 'faster_whisper'}))")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})  # fmt: skip
    assert loaded.stdout.strip() == "[]", loaded.stderr


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI must run this: apt-get install -y chromium chromium-driver")
        pytest.skip("Chromium is not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def wait_until(driver, condition) -> None:
    """Until condition(driver) holds (a click's navigation may still be under way), 10 s at most."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10, ignored_exceptions=(Exception,)).until(condition)


def text_of(driver, selector: str) -> str:
    return driver.find_element("css selector", selector).text


def test_the_web_view_shows_nothing_without_the_token_then_logs_in(served, browser):
    url = served[0]
    browser.get(url + "/")
    assert browser.current_url == url + "/login" and "broken.flac" not in browser.page_source
    browser.get(url + "/jobs?state=succeeded")
    assert browser.current_url == url + "/login" and "1688-142285" not in browser.page_source
    browser.find_element("id", "token").send_keys("not-the-token-at-all")
    browser.find_element("id", "login").click()
    assert "not the service's" in text_of(browser, "#login-error")
    browser.find_element("id", "token").send_keys(TOKEN)
    browser.find_element("id", "login").click()
    wait_until(browser, lambda driver: driver.current_url == url + "/")
    cookie = browser.get_cookie("batchscribe_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_the_main_page_shows_counts_throughput_and_why_a_job_failed(served, browser):
    url = served[0]
    browser.get(url + "/")
    assert text_of(browser, "#count-succeeded b") == "2" and text_of(browser, "#count-dead b") == "1"
    assert text_of(browser, "#count-queued b") == "0"
    bars = browser.find_elements("css selector", "#throughput rect.bar")
    assert len(bars) == 12 and float(bars[-1].get_attribute("height")) > 0
    (row,) = browser.find_elements("css selector", "#failed tr:not(:first-child)")
    assert "broken.flac" in row.text and "dead" in row.text
    if os.environ.get("BATCHSCRIBE_SCREENSHOT"):
        browser.save_screenshot(os.environ["BATCHSCRIBE_SCREENSHOT"])
    browser.get(url + "/jobs?state=succeeded")
    rows = browser.find_elements("css selector", "#jobs tr.job")
    assert sorted(r.find_element("css selector", "code").text.rsplit("/", 1)[1] for r in rows) == [
        p.name for p in FILES
    ]


def test_a_transcript_page_shows_timed_segments_and_the_text(served, browser):
    url = served[0]
    hypotheses, references = [], []
    for job_id in job_ids(url, "succeeded"):
        browser.get(f"{url}/jobs/{job_id}")
        assert text_of(browser, "#state") == "succeeded"
        source = text_of(browser, "#job code")
        browser.find_element("id", "transcript").click()
        wait_until(browser, lambda driver: driver.current_url.endswith("/transcript"))
        assert text_of(browser, "#language") == "en"
        segments = browser.find_elements("css selector", "#segments tr.segment")
        assert segments and segments[0].find_element("css selector", "td.time").text.startswith("0:00:")
        hypotheses.append(" ".join(s.find_element("css selector", "td.text").text for s in segments))
        references.append(reference("librispeech/test-other/" + Path(source).name))
    assert wer(references, hypotheses) <= 0.25  # tiny.en on these two: 7.5% (5 errors in 66 words)


def test_retrying_a_dead_job_from_its_page_queues_it_again(served, browser):
    url = served[0]
    (dead,) = job_ids(url, "dead")
    browser.get(f"{url}/jobs/{dead}")
    assert "broken.flac" in text_of(browser, "#reason")
    browser.find_element("id", "retry").click()
    wait_until(browser, lambda driver: text_of(driver, "#state") == "queued")
    assert browser.current_url == f"{url}/jobs/{dead}"
    assert get_json(url, "/api/status")["counts"]["dead"] == 0
    browser.get(url + "/")
    assert text_of(browser, "#count-queued b") == "1" and text_of(browser, "#count-dead b") == "0"


def test_a_transcript_page_names_speakers_when_the_transcript_has_them():
    from batchscribe.jobs.store import Job
    from batchscribe.service.views import _html

    job = Job(7, "s3://media/audio-input/", "call.wav", "e", "s3://media/out/", "succeeded", 0, 0, None, None, 0, None,
              9.0, 0, 0, 0)  # fmt: skip
    document = {"language": "de", "duration": 9.0, "segments": [
        {"start": 0.0, "end": 4.2, "text": "Guten Tag.", "speaker": "SPEAKER_1"},
        {"start": 4.5, "end": 9.0, "text": "Hallo <b>!", "speaker": "SPEAKER_2"}]}  # fmt: skip
    page = _html("transcript.html", job=job, document=document, speakers=True).body.decode()
    assert '<td class="speaker">SPEAKER_2</td>' in page and 'id="language">de<' in page
    assert "Hallo &lt;b&gt;!" in page and "0:00:04.500" in page  # text is escaped, times shown
