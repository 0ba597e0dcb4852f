// Package reliability holds fault scenarios run on a whole fleet of real components (e2e/env:
// kube-apiservers, registries, the bin/hub and bin/agent processes): registries that fail,
// throttle, reset and stall behind a mirrortest.FaultProxy or go down for a while, a member's
// API server stopped and started, a member's API server that accepts connections and never
// answers the hub (a stalling TCP proxy in front of it), the hub SIGKILLed in the middle of a copy, an agent killed,
// a leader failover between two hub replicas. An independent watcher (e2e/invariants) runs
// throughout each scenario and must report no violation; each scenario reports how long the
// fleet took to recover and how many requests were retried (testenv.Report).
//
// The scenarios are functions taking an Input (build tag e2e), run by reliability_test.go.
package reliability
