# make run  : prepare data -> preprocess -> train -> evaluate (CORPUS=DIR, PRETRAINED=DIR: local copies;
#             SOUNDS=DIR: a cry/ + not_cry/ tree, ../shared/sounds when present: the detector trains on it,
#             the real-room clip report plays it, and nights mixed from half its sources are scored by a
#             detector that never heard those)
# make test : the test suite (what CI runs)
# make bench: speed and memory benchmarks
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CORPUS ?=
PRETRAINED ?=
SOUNDS ?= $(wildcard ../shared/sounds)
export PYTHONUNBUFFERED := 1

.PHONY: run test bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

run: $(VENV)/.installed
	sh scripts/system-deps.sh run
	$(PY) prepare_data.py $(if $(CORPUS),--source $(CORPUS)) $(if $(PRETRAINED),--models-source $(PRETRAINED)) \
		|| [ $$? -eq 1 ]   # 1: some files skipped, listed
	$(PY) preprocess_model.py || [ $$? -eq 1 ]
	$(PY) train_model.py $(if $(SOUNDS),--sounds $(SOUNDS) --night-check models/cry_detector_night_check.json)
	$(PY) export_model.py || echo "note: LiteRT export not used; evaluation and live use the Keras model"
	$(PY) evaluate_model.py
	$(if $(SOUNDS),$(PY) evaluate_model.py --sounds $(SOUNDS))
	$(if $(SOUNDS),$(PY) make_nights.py --sounds $(SOUNDS) --out data/nights)
	$(if $(SOUNDS),$(PY) evaluate_model.py --events data/nights --detector models/cry_detector_night_check.json)

test: $(VENV)/.installed
	sh scripts/system-deps.sh test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n auto --dist loadgroup tests

# Inputs are made only when missing: a fresh clone gets the corpus (CORPUS, else the shared
# copy beside the repository, else a download), spectrograms and a short-trained model.
# preprocess_model.py and prepare_data.py exit 1 when they skipped some files: not an error here.
BENCH_CORPUS := $(or $(CORPUS),$(wildcard ../shared/donateacry-corpus))
BENCH_PRETRAINED := $(or $(PRETRAINED),$(wildcard ../shared/models))
bench: $(VENV)/.installed
	test -d data/audio || $(PY) prepare_data.py $(if $(BENCH_CORPUS),--source $(BENCH_CORPUS)) \
		$(if $(BENCH_PRETRAINED),--models-source $(BENCH_PRETRAINED)) || [ $$? -eq 1 ]
	test -f data/spectrograms/settings.json || $(PY) preprocess_model.py || [ $$? -eq 1 ]
	test -f models/cry_model.keras || $(PY) train_model.py --epochs 8
	$(PY) benchmarks/run_all.py --model models/cry_model.keras

clean:
	rm -rf data/audio data/other_cries data/spectrograms data/generated data/detector_cache data/nights models reports
