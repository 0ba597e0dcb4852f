# image-cloner: every target has a `## help` comment; `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

BIN          := $(CURDIR)/bin
GO           ?= go
GOTEST_FLAGS ?=
# Tools are pinned and installed into ./bin by `go install`, nothing global.
CONTROLLER_GEN_VERSION ?= v0.21.0
STATICCHECK_VERSION    ?= v0.8.2
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
STATICCHECK    := $(BIN)/staticcheck-$(STATICCHECK_VERSION)
KIND_VERSION           ?= v0.33.0
KIND           := $(BIN)/kind-$(KIND_VERSION)

##@ General

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: build
build: ## Build bin/hub and bin/agent
	$(GO) build -o $(BIN)/hub ./hub
	$(GO) build -o $(BIN)/agent ./agent

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code and the CRD into deploy/crds
	$(CONTROLLER_GEN) object paths=./pkg/api/...
	$(CONTROLLER_GEN) crd paths=./pkg/api/... output:crd:artifacts:config=deploy/crds
	@$(MAKE) --no-print-directory chart

.PHONY: chart
chart: ## Copy deploy/'s webhooks, CRD and alert rules into the Helm chart (charts/image-cloner/files), which reads them from there
	cp deploy/webhooks/webhooks.yaml deploy/crds/image-cloner.io_clonedimages.yaml charts/image-cloner/files/
	cp deploy/monitoring/hub/prometheusrule.yaml charts/image-cloner/files/prometheusrule-hub.yaml
	cp deploy/monitoring/agent/prometheusrule.yaml charts/image-cloner/files/prometheusrule-agent.yaml

.PHONY: verify-generate
verify-generate: generate ## Fail if generated files are not committed
	@git diff --exit-code -- pkg/api deploy/crds charts/image-cloner/files || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }

.PHONY: lint
lint: $(STATICCHECK) ## Run gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags e2e ./...
	$(STATICCHECK) -tags e2e ./...

##@ Testing

.PHONY: test-deps
test-deps: ## Build/install the real kube-apiserver, etcd, kubectl and registry (cached by version)
	@hack/test-deps.sh >/dev/null

.PHONY: browser-deps
browser-deps: ## Install Debian's chromium (/usr/bin/chromium) for the dashboard's browser test, if missing (needs root)
	@hack/browser-deps.sh

.PHONY: test
# make test ends with e2e-kind (Pods on real nodes) unless SKIP_E2E_KIND=1; one image platform
# is enough there, the arm64 build is checked by make images.
SKIP_E2E_KIND ?=

test: test-deps browser-deps lint ## Run every test: lint, unit, integration (real apiservers, registries, headless Chromium), e2e (real hub and agent processes), fuzz seeds, then e2e-kind (SKIP_E2E_KIND=1 skips it)
	@$(MAKE) --no-print-directory test-go
	@if [ -n "$(SKIP_E2E_KIND)" ]; then echo "test: e2e-kind skipped (SKIP_E2E_KIND=$(SKIP_E2E_KIND))"; \
	  else $(MAKE) --no-print-directory e2e-kind IMAGE_PLATFORMS=linux/$$($(GO) env GOARCH); fi

.PHONY: test-go
test-go: ## The Go tests of make test, without lint and e2e-kind
	@figures=$$(mktemp -t image-cloner-figures.XXXXXX); trap 'rm -f "$$figures"' EXIT; \
	  assets=$$(hack/test-deps.sh 2>/dev/null | tail -1); \
	  [ -x "$$assets/kube-apiserver" ] || { echo "test: hack/test-deps.sh gave no assets: run it to see why"; exit 1; }; \
	  promtool=$$(hack/promtool.sh 2>/dev/null | tail -1); \
	  [ -x "$$promtool" ] || { echo "test: hack/promtool.sh gave no promtool: run it to see why"; exit 1; }; \
	  echo "test: control planes and registry from $$assets, promtool $$promtool"; \
	  rc=0; IMAGE_CLONER_FIGURES=$$figures IMAGE_CLONER_ASSETS=$$assets IMAGE_CLONER_PROMTOOL=$$promtool $(GO) test -tags e2e $(GOTEST_FLAGS) -count=1 -timeout 30m ./... || rc=$$?; \
	  if [ -s "$$figures" ]; then echo; echo "Measured figures (printed, never asserted):"; sed 's/^/  /' "$$figures"; fi; \
	  exit $$rc

.PHONY: test-rules
test-rules: test-deps ## Check deploy/monitoring's alerts: promtool check/test rules (hack/promtool.sh builds it once), the chart's copies, and every metric they use against the hub's and agent's real registries
	@assets=$$(hack/test-deps.sh 2>/dev/null | tail -1); promtool=$$(hack/promtool.sh | tail -1); \
	  $(GO) test -count=1 ./internal/promrules/ && \
	  IMAGE_CLONER_PROMTOOL=$$promtool $(GO) test -count=1 ./deploy/ -run 'Monitoring|PodMonitor' && \
	  IMAGE_CLONER_ASSETS=$$assets $(GO) test -count=1 ./hub/internal/app/ ./agent/internal/app/ -run 'TestMetrics_rulesUseExportedMetrics' && \
	  $(GO) test -count=1 ./charts/... -run 'TestChart_monitoringMatchesDeploy|TestChart_filesAreDeploysCopies'

.PHONY: e2e
e2e: test-deps ## End-to-end specs (e2e/) and the demo, on local control planes with real hub and agent processes (build tag e2e; a few minutes)
	@assets=$$(hack/test-deps.sh 2>/dev/null | tail -1); \
	  IMAGE_CLONER_ASSETS=$$assets $(GO) test -tags e2e $(GOTEST_FLAGS) -count=1 -timeout 20m ./e2e/...

.PHONY: e2e-kind
e2e-kind: test-deps $(KIND) ## The e2e specs on three kind clusters running our images and overlays, Pods on real nodes; starts a Docker engine if none answers (root), tears everything down (E2E_KIND_KEEP=1 keeps it); hack/e2e-kind.sh
	@assets=$$(hack/test-deps.sh 2>/dev/null | tail -1); \
	  PATH=$(BIN):$$assets:$$PATH hack/e2e-kind.sh

.PHONY: node-image
node-image: test-deps ## Build the kind node image offline (Kubernetes from test-deps, cached by a hash of versions and recipe); prints its tag; needs a Docker engine (hack/kind/docker.sh starts one)
	@hack/kind/docker.sh >/dev/null && hack/kind/node-image.sh

.PHONY: images
images: test-deps ## Build the hub and agent images without Docker (linux/amd64+arm64 OCI layouts and tarballs in artifacts/images) and the registry image; IMAGE_REPO, IMAGE_TAG, IMAGE_PUSH=1
	@hack/kind/images.sh

.PHONY: bench
bench: bench-copy bench-fleet ## Every benchmark: bench-copy and bench-fleet

.PHONY: bench-fleet
bench-fleet: test-deps build ## A hub with 50 registered clusters over 5 apiservers and 2,000 workloads: convergence, copies, memory, time to patch; writes bench/results/fleet.{json,txt} (BENCH_FLEET_FLAGS=-quick for a small run)
	@assets=$$(hack/test-deps.sh 2>/dev/null | tail -1); \
	  IMAGE_CLONER_ASSETS=$$assets $(GO) run ./bench/fleet -bin $(BIN) $(BENCH_FLEET_FLAGS)

.PHONY: bench-fleet-1000
bench-fleet-1000: ## bench-fleet at 1,000 registrations over 5 apiservers and 100,000 cached workloads (500 workloads, no growth step); writes bench/results/fleet-1000/; about 3 minutes, 4 GiB
	@$(MAKE) --no-print-directory bench-fleet BENCH_FLEET_FLAGS="-clusters 1000 -apiservers 5 -workloads 500 -images 40 -samples 50 -cold 1 -grow=false -out bench/results/fleet-1000 $(BENCH_FLEET_FLAGS)"

FUZZTIME ?= 30s
.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s); make test runs their committed seed corpora
	@for pkg in $$($(GO) list ./pkg/...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

.PHONY: bench-copy
bench-copy: test-deps ## Copy a synthetic fleet with image-cloner, crane, skopeo and regctl; writes bench/results/copy.{json,txt}
	@tools=$$(hack/bench-tools.sh | tail -1); \
	  assets=$$(hack/test-deps.sh 2>/dev/null | tail -1); \
	  IMAGE_CLONER_ASSETS=$$assets $(GO) run ./bench/copy -tools "$$tools" $(BENCH_COPY_FLAGS) | tee bench/results/copy.txt

.PHONY: demo
demo: build ## Run the local demo: control planes, registries, hub, agents, dashboard (Ctrl-C stops it; DEMO_FLAGS=-exit-when-ready)
	$(GO) build -o $(BIN)/demo ./hack/demo
	@$(BIN)/demo -bin $(BIN) -dir $(CURDIR)/demo $(DEMO_FLAGS)

.PHONY: clean
clean: ## Remove ./bin and test artifacts (the cached control planes stay)
	rm -rf $(BIN) artifacts

##@ Deployment (to the current kubectl context)

KUBECTL   ?= kubectl
NAMESPACE := image-cloner-system
OVERLAY   ?= deploy/overlays/single-cluster

.PHONY: install
install: ## Apply deploy/overlays/single-cluster (CRD, hub --local-cluster, agent, webhooks); BACKUP_REGISTRY=quay.io/acme sets it
	$(KUBECTL) apply --server-side --field-manager=image-cloner -k $(OVERLAY)
	@if [ -n "$(BACKUP_REGISTRY)" ]; then \
	  $(KUBECTL) -n $(NAMESPACE) patch configmap image-cloner-configuration --type merge -p '{"data":{"BACKUP_REGISTRY":"$(BACKUP_REGISTRY)"}}'; \
	else \
	  echo "install: BACKUP_REGISTRY is not set here; the hub stays unready until it is in ConfigMap $(NAMESPACE)/image-cloner-configuration (make install BACKUP_REGISTRY=quay.io/acme)"; \
	fi

IMAGE_REPO ?= image-cloner
IMAGE_TAG  ?= latest

.PHONY: docker-build
docker-build: ## Build IMAGE_REPO/hub and IMAGE_REPO/agent (default image-cloner/...:latest) from hub/ and agent/Dockerfile; needs Docker
	docker build -f hub/Dockerfile -t $(IMAGE_REPO)/hub:$(IMAGE_TAG) .
	docker build -f agent/Dockerfile -t $(IMAGE_REPO)/agent:$(IMAGE_TAG) .

# Order matters: with the agent running, its patcher would re-patch what restore reverts. The
# agent and hub run in the cluster, so `agent restore` runs here, from bin/agent.
.PHONY: uninstall
uninstall: ## Stop hub and agent, restore patched workloads (bin/agent restore), delete webhooks and all install applied, namespace included
	$(GO) build -o $(BIN)/agent ./agent
	-$(KUBECTL) -n $(NAMESPACE) scale deployment/image-cloner-agent --replicas=0
	-$(KUBECTL) -n $(NAMESPACE) scale deployment/image-cloner-hub --replicas=0
	-$(KUBECTL) -n $(NAMESPACE) wait --for=delete pod -l 'app.kubernetes.io/name in (image-cloner-agent,image-cloner-hub)' --timeout=3m
	@ok=; for i in $$(seq 1 12); do \
	  if $(BIN)/agent restore --namespace $(NAMESPACE); then ok=1; break; fi; \
	  echo "uninstall: retrying agent restore in 5s (the agent's lease expires 15s after it stopped)"; sleep 5; \
	done; \
	[ -n "$$ok" ] || { echo "uninstall: agent restore failed, nothing deleted: fix the error above (or $(BIN)/agent restore --force) and rerun"; exit 1; }
	$(KUBECTL) delete --ignore-not-found -k $(OVERLAY)
	$(KUBECTL) delete secret --all-namespaces --ignore-not-found -l app.kubernetes.io/managed-by=image-cloner

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $@

$(STATICCHECK):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(BIN)/staticcheck $@

# hack/e2e-kind.sh calls `kind`: bin/kind links to the pinned version.
$(KIND):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/kind@$(KIND_VERSION)
	mv $(BIN)/kind $@
	ln -sf $(notdir $@) $(BIN)/kind
