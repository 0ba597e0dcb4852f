// Package dockerconfig reads Docker config JSON, the payload of Kubernetes Secrets of type
// kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg: Parse checks it with errors that
// never repeat its data, and Keychain turns it into a go-containerregistry authn.Keychain that
// matches registries as the kubelet does.
//
// It is small on purpose: the agent validates pull credentials with it without linking a copy
// engine, and the hub builds its registry keychains with it.
//
// Keychain uses go-containerregistry's pkg/authn/kubernetes (NewFromPullSecrets), which does the
// same job as the kubelet's credential keyring: host globs, repository path prefixes, several
// credentials per host. What this package adds before it: validation that names the broken
// entry without quoting it (that keyring returns json's own errors, which may quote input),
// Docker Hub's aliases folded into index.docker.io (that keyring would not match a docker.io
// key against index.docker.io references), and the older .dockercfg layout.
package dockerconfig
