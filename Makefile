# Runway developer entry points. The local cluster is real Kubernetes run as plain processes on this machine
# (no Docker); see docs/local-cluster.md. Cluster targets need root.
SHELL := /bin/bash
CLUSTER := hack/cluster
# The workspace version tags Runway's own images: runway.local/<name>:$(VERSION).
VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)

.PHONY: help images up down logs status test unit-test cluster-test

help:
	@echo "make up            start (or check) the local cluster and import the images; prints KUBECONFIG"
	@echo "make down          stop it and clean the host (logs stay in target/cluster-logs)"
	@echo "make status        which components run, where they log, nodes and pods"
	@echo "make logs          the end of every component log (make logs LINES=100)"
	@echo "make images        build Runway's images into target/images (imported into a running cluster)"
	@echo "make test          unit tests, then make up, then the cluster suites"

# Release binaries packed as OCI tarballs in target/images; oci-image.sh imports each at once if the cluster
# runs, and every `make up` imports all of target/images.
images:
	$(CLUSTER)/deps.sh
	cargo build --release -p runway-hello
	$(CLUSTER)/oci-image.sh runway.local/hello:$(VERSION) target/release/runway-hello
# >>> Runway's operator and activator images go here, e.g.
#	$(CLUSTER)/oci-image.sh runway.local/operator:$(VERSION) target/release/runway-operator
# <<<

up: images
	$(CLUSTER)/up.sh
# >>> Install Runway into the cluster here (after up.sh: the cluster is ready and KUBECONFIG exists), e.g.
#	.cluster/bin/helm --kubeconfig .cluster/kubeconfig upgrade --install runway deploy/runway \
#	  --namespace runway-system --create-namespace --wait --set image.tag=$(VERSION)
# <<<

down:
	$(CLUSTER)/down.sh

status:
	@$(CLUSTER)/logs.sh status

LINES ?= 20
logs:
	@$(CLUSTER)/logs.sh tail $(LINES)

unit-test:
	cargo test --workspace

# The suites in tests/tests (smoke, e2e) against the cluster of .cluster/kubeconfig: every suite runs even if one
# fails, and tests one at a time (e2e measures pod counts and latencies).
cluster-test:
	cargo test -p runway-tests --features cluster --no-fail-fast -- --test-threads=1

test: unit-test
	$(MAKE) up
	$(MAKE) cluster-test
