# Two commands on a fresh machine:
#   make demo   - set up .venv, build the built-in sample, run every stage on it, show the result
#   make test   - set up .venv (with test tools) and run the tests
# On Windows without make, run the same commands by hand (see README).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAMPLE_CONFIG := configs/sample.py
SAMPLE_VIDEOS := data/sample/videos
SAMPLE_PARTIAL := data/sample/partial

.PHONY: demo test venv clean-demo

# The venv is rebuilt only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

# Ray is optional (--ray): only the tests install it, so `make demo` stays as light as before.
$(VENV)/.installed-ray: requirements-ray.txt $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-ray.txt
	touch $@

venv: $(VENV)/.installed

$(SAMPLE_VIDEOS)/metadata.json: | $(VENV)/.installed
	$(PY) -m deepfake_detect.sample $(SAMPLE_VIDEOS)

# Partly manipulated videos (two people with one swapped, spliced takes): scored, never trained on.
$(SAMPLE_PARTIAL)/metadata.json: | $(VENV)/.installed
	$(PY) -m deepfake_detect.sample $(SAMPLE_PARTIAL) --partial

demo: $(VENV)/.installed $(SAMPLE_VIDEOS)/metadata.json $(SAMPLE_PARTIAL)/metadata.json
	$(PY) 00-convert_video_to_image.py --config $(SAMPLE_CONFIG)
	$(PY) 01a-crop_faces_with_mtcnn.py --config $(SAMPLE_CONFIG)
	$(PY) 02-prepare_fake_real_dataset.py --config $(SAMPLE_CONFIG) --replace
	$(PY) 03-train_cnn.py --config $(SAMPLE_CONFIG) --overwrite
	$(PY) 04-detect_deepfakes.py --config $(SAMPLE_CONFIG) --json runs/sample/held-out-videos.json \
		$$($(PY) -m deepfake_detect.demo held-out data/sample/split_dataset/split.csv $(SAMPLE_VIDEOS)) $(SAMPLE_PARTIAL)
	@echo
	@$(PY) -m deepfake_detect.demo table runs/sample/held-out-videos.json $(SAMPLE_VIDEOS)/metadata.json \
		data/sample/split_dataset/split.csv
	@echo
	@$(PY) -m deepfake_detect.demo partial runs/sample/held-out-videos.json $(SAMPLE_PARTIAL)/metadata.json
	@echo
	@echo "Demo outputs: frames, faces and datasets under data/sample/; model, metrics (metrics.json: the"
	@echo "test split's 12 held-out videos), plots and MODEL_CARD.md in runs/sample/. Trained offline from"
	@echo "random weights, the model tells the sample's face swaps from the real takes it never saw. With"
	@echo "two identities this shows the pipeline learns, not how it fares on real deepfakes (README)."

# REQUIRE_RAY: Ray was installed just above, so the Ray tests must import it (fail, not skip).
# --durations=25 prints the slowest tests, so a test that grows slow shows before it times out.
test: $(VENV)/.installed $(VENV)/.installed-ray
	DEEPFAKE_DETECT_REQUIRE_RAY=1 $(PY) -m pytest --durations=25

# Removes only what `make demo` made.
clean-demo:
	rm -rf data/sample runs/sample
