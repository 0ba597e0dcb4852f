// Package repo finds this module's checkout and runs its hack/ scripts that build and cache
// tools (hack/test-deps.sh, hack/promtool.sh ...), for tests and programs that need what those
// scripts print. It is test and tooling infrastructure, not used by the hub or the agent.
package repo
