// Package config reads image-cloner's configuration: the seed's ConfigMap
// image-cloner-configuration (BACKUP_REGISTRY, MAX_CONCURRENT_RECONCILES, NAMESPACES_TO_IGNORE,
// kept compatible) with the keys added since, and the registry credentials the hub pushes and
// hands out with.
//
// Parse validates every key at once and returns all problems joined, each naming the key, the
// ConfigMap and the fix, so a user fixes a broken configuration in one round. The hub and the
// agent both read the same ConfigMap through this package, so they agree on defaults.
//
// # NAMESPACES_TO_IGNORE
//
// The seed treated an empty value as "ignore nothing", which silently started rewriting
// kube-system and image-cloner's own pods. Here:
//
//   - the installation namespace is always ignored: image-cloner never backs up or rewrites its
//     own pods, so it cannot lock itself out of a registry;
//   - a missing or blank value means the default: kube-system (plus the installation namespace);
//   - a list names the namespaces to ignore (plus the installation namespace), so to stop
//     ignoring kube-system list the others explicitly;
//   - the single value "-" (not a valid namespace name, so never ambiguous) means "ignore only
//     the installation namespace": the one way to process kube-system, which has to be spelled
//     out rather than left blank by accident.
package config
