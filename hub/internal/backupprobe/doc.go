// Package backupprobe tells whether the backup registry answers, whether or not anything is
// being copied: a Prober asks it for /v2/ (the API version check every registry client makes
// first) at an interval, as the hub reaches it (its transport, its CA bundle), and reports each
// result, e.g. to the image_cloner_backup_registry_up gauge. Copies and verifications fail
// when the registry is down too, but in a quiet fleet none may run for an hour.
package backupprobe
