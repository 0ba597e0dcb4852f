// Package app assembles the agent: one controller-runtime manager with the patcher, the pull
// secrets reconciler, the admission webhooks and their certificates, and the restore command.
// agent/main.go only parses flags into Options.
package app
