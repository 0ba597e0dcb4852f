// Command copy is image-cloner's copy benchmark (`make bench-copy`): it mirrors a synthetic
// fleet of images with image-cloner's copy engine (pkg/mirror) and, in the same run and on the
// same machine, with crane, skopeo and regctl, and prints what each cost.
//
// The fleet looks like real images: twenty application images over a few shared base layers of
// incompressible data, some of them multi-arch indexes, generated from a fixed seed so that
// runs are comparable, and pushed once to an "upstream" CNCF distribution registry (the one
// internal/testenv runs for the integration tests). For each tool and run a fresh backup registry is
// started and every image is copied into its own repository, named by pkg/imageref's flat
// scheme, five images at a time: five goroutines calling (*mirror.Mirror).Copy for
// image-cloner, five processes at a time for the others. The same copy is then run again
// (warm: everything present).
//
// Figures come from the registries themselves, whatever the client: wall times, the blob bytes
// the backup registry saw uploaded (blob upload completions in its access log, priced with the
// sizes of the generated blobs), mounts, the source's requests by method during the warm run,
// and whether every destination (indexes and their children) has the source's digest. The
// median of the runs is printed and written to bench/results/copy.json; every run is printed.
//
// Nothing is asserted: the targets of issue 3 are printed as met or missed. Timings on a shared
// machine are noisy, so the load average is printed before and after every copy.
package main
