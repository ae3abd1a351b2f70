# Runway developer entry points. The local cluster is real Kubernetes run as plain processes on this machine
# (no Docker); see docs/local-cluster.md. Cluster targets need root.
SHELL := /bin/bash
CLUSTER := hack/cluster
# The workspace version: the chart's version, and the default tag of Runway's images.
VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)

.PHONY: help release-binaries images release binaries up down logs status lint crds manifests test unit-test cluster-test kind-test

help:
	@echo "make up            the local cluster with Runway and the sample app; prints the curl to try"
	@echo "make down          stop it and clean the host (logs stay in target/cluster-logs)"
	@echo "make status        which components run, where they log, nodes and pods"
	@echo "make logs          the end of every component log (make logs LINES=100)"
	@echo "make release       push Runway's images and OCI chart: make release REGISTRY=ghcr.io/acme [TAG=...]"
	@echo "make images        build Runway's images as OCI tarballs in target/images/runway (docker load, kind load)"
	@echo "make test          lint, unit tests, then make up, then the cluster suites"
	@echo "make crds          regenerate the CRD YAML from the Rust types"
	@echo "make manifests     render the Helm chart into deploy/manifests/runway.yaml"
	@echo "make kind-test     e2e on kind: with Docker (no root), else podman + a node image built here (root)"

# Runway's release binaries: the operator, the activator, the node agent and the sample app, with the commit they are built from in
# runway_build_info (runway_api::build). Only here: the debug builds of lint and tests would rebuild at every commit.
release-binaries:
	RUNWAY_GIT_REVISION=$$(git rev-parse HEAD 2>/dev/null) cargo build --release -p runway-hello -p runway-operator -p runway-activator -p runway-node

# The images as OCI tarballs (without Docker), for `docker load` or `kind load image-archive`.
images: release-binaries
	$(CLUSTER)/deps.sh
	for c in operator activator node hello; do \
	  $(CLUSTER)/oci-image.sh --no-import --out target/images/runway runway.local/runway-$$c:$(VERSION) \
	    target/release/runway-$$c || exit 1; done

# Images and chart to a registry (docs/install.md): REGISTRY=host[:port][/path], TAG (default: the workspace
# version), PLAIN_HTTP=1 for a registry without TLS.
REGISTRY ?=
TAG ?= $(VERSION)
release: release-binaries
	@[ -n "$(REGISTRY)" ] || { echo "make release REGISTRY=host[:port][/path] [TAG=...] [PLAIN_HTTP=1]"; exit 2; }
	hack/release.sh --registry $(REGISTRY) --tag $(TAG) $(if $(PLAIN_HTTP),--plain-http)

# The cluster's Go binaries (cached after the first build; see hack/cluster/build.sh).
binaries:
	$(CLUSTER)/build.sh >/dev/null

# The cluster, Runway released to its registry and installed from there with Helm, and the sample app; prints the
# curl to try. The Go builds and the cargo build run side by side: each leaves cores idle (module downloads, links,
# LTO) that the other fills.
up:
	$(CLUSTER)/deps.sh
	$(MAKE) --no-print-directory -j2 binaries release-binaries
	$(CLUSTER)/up.sh
	hack/install-runway.sh

down:
	$(CLUSTER)/down.sh

status:
	@$(CLUSTER)/logs.sh status

LINES ?= 20
logs:
	@$(CLUSTER)/logs.sh tail $(LINES)

# Formatting and lints, as CI requires them. hadolint has no Debian package: it runs only where installed. The chart
# (with its values.schema.json) is linted where helm is built (make up builds it; e2e test t00 lints it too), and its
# PrometheusRule checked by promtool (hack/check-rules.sh) where the prometheus package is installed.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	shellcheck -x hack/*.sh hack/*/*.sh .ci/run
	@if [ -x .cluster/bin/helm ]; then .cluster/bin/helm lint --strict deploy/runway; \
	else echo "lint: helm not built yet (make up), the chart is linted by e2e test t00"; fi
	@if [ -x .cluster/bin/helm ] && command -v promtool >/dev/null; then hack/check-rules.sh; \
	else echo "lint: helm or promtool missing (make up installs both), the alert rules are checked by e2e test t43"; fi
	@if command -v hadolint >/dev/null; then hadolint deploy/docker/Dockerfile; \
	else echo "lint: hadolint not installed, deploy/docker/Dockerfile not checked"; fi

# The CRD YAML generated from the Rust types (committed; crds/tests/crd_drift.rs fails when it is stale), and its
# copy in the chart, which renders it as templates (deploy/runway/templates/crds.yaml).
crds:
	cargo run -q -p runway-api --bin crdgen -- services > crds/serving.runway.dev_services.yaml
	cargo run -q -p runway-api --bin crdgen -- revisions > crds/serving.runway.dev_revisions.yaml
	cargo run -q -p runway-api --bin crdgen -- domainmappings > crds/serving.runway.dev_domainmappings.yaml
	cp crds/serving.runway.dev_services.yaml crds/serving.runway.dev_revisions.yaml crds/serving.runway.dev_domainmappings.yaml deploy/runway/files/crds/

# The chart rendered with its defaults, for users without Helm (checked by e2e test t00, tests/tests/e2e_chart.rs).
# The CRDs are templates, so they are in it; the helm test's hooks are not. --kube-version: the chart's minimum, as
# `helm template` checks the chart's kubeVersion against its default, which a helm built without its release ldflags
# (as .cluster/bin/helm is) reports as 1.20.
manifests:
	.cluster/bin/helm template runway deploy/runway --namespace runway-system --skip-tests --kube-version 1.30.0 > deploy/manifests/runway.yaml

unit-test:
	cargo test --workspace

# The suites in tests/tests (smoke, and the e2e suite's files e2e_*.rs; bench_cold_start is #[ignore]d) against the
# cluster of .cluster/kubeconfig, each file a process of its own, in name order: every file runs even if one fails,
# and tests one at a time (e2e measures pod counts and latencies).
cluster-test:
	cargo test -p runway-tests --features cluster --no-fail-fast -- --test-threads=1

test: lint unit-test
	$(MAKE) up
	$(MAKE) cluster-test

# The e2e suite on the kind cluster "runway" (created if missing, deleted afterwards unless KEEP=1). With Docker:
# images built by docker from deploy/docker/Dockerfile (hack/kind/e2e.sh, no root). Without Docker (this test bed):
# kind's podman provider, a node image built from our own builds, images packed by hack/cluster/oci-image.sh
# (hack/kind/podman-e2e.sh, root). Docker is used when its engine answers; KIND_PROVIDER=docker or podman forces one.
KIND_PROVIDER ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
kind-test:
	@if [ "$(KIND_PROVIDER)" = docker ]; then hack/kind/e2e.sh; else hack/kind/podman-e2e.sh; fi
