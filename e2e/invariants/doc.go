// Package invariants is an independent watcher of a running image-cloner fleet. It reads what
// the fleet has done (the workloads and ClonedImages in every member cluster, and the backup
// registry's content and access log) without using the hub's or the agent's code to decide,
// and records every violation of the promises image-cloner makes:
//
//   - no workload (any kind, any container list) and no Ready ClonedImage ever references a
//     backup whose manifest is not fully in the backup registry: each new backup reference is
//     checked the moment it is seen, the manifest and, the first time a digest is seen, every
//     blob and every child manifest of an index;
//   - no workload is left half patched: some containers at their backup while others whose
//     image has a Ready ClonedImage still run the source, for longer than a grace period; and
//     the original-images annotation agrees with the containers;
//   - no ClonedImage, once seen, disappears;
//   - at the end, every ClonedImage is Ready, or Failed with a reason;
//   - each digest is pushed to the backup registry once (see Report.Copies for what counts).
//
// A scenario starts a Watcher before it injects faults and calls Finish at the end:
//
//	w := invariants.Start(ctx, invariants.Input{...})
//	// ... faults, restarts, workloads ...
//	report, err := w.Finish(ctx)
package invariants
