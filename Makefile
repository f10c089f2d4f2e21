# make run  : prepare data -> preprocess -> train -> evaluate (CORPUS=DIR uses a local corpus copy)
# make test : the test suite (what CI runs)
# make bench: speed and memory benchmarks
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CORPUS ?=
export PYTHONUNBUFFERED := 1

.PHONY: run test bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

run: $(VENV)/.installed
	sh scripts/system-deps.sh run
	$(PY) prepare_data.py $(if $(CORPUS),--source $(CORPUS))
	$(PY) preprocess_model.py
	$(PY) train_model.py
	$(PY) evaluate_model.py

test: $(VENV)/.installed
	sh scripts/system-deps.sh test
	$(PY) -m pytest tests

clean:
	rm -rf data/audio data/spectrograms models reports
