# Every target creates / updates the local virtualenv itself: a fresh machine needs only
# Python 3.11+, make and access to the package registry.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test serve bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/careroute demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# make serve TENANTS=tenants.toml [DATA=./data]
serve: $(STAMP)
	$(BIN)/careroute serve $(if $(TENANTS),--tenants $(TENANTS)) $(if $(DATA),--data-dir $(DATA))

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
