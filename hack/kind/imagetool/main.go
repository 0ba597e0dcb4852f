// Command imagetool builds container images without a Docker engine or a base image to pull,
// with go-containerregistry: layers of local files (or a root filesystem tarball) on an empty
// image, its config set like a Dockerfile would. The kind node image's control-plane images, the
// registry image and the hub and agent images (`make images`) are built with it.
//
//	imagetool image -tag REF [-platform-binary linux/amd64=PATH ...] [-binary-path /hub]
//	    [-file SRC=DST ...] [-rootfs TAR] [-nonroot] [-entrypoint /hub] [-cmd a,b]
//	    [-env K=V ...] [-user 65532:65532] (-tarball OUT | -push | -oci-layout DIR)
//	imagetool htpasswd USER <password     prints USER:bcrypt-hash, as htpasswd -Bbn does
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// epoch keeps layers reproducible: same files, same digest.
var epoch = time.Unix(0, 0).UTC()

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: imagetool image|htpasswd [args]"))
	}
	var err error
	switch os.Args[1] {
	case "image":
		err = imageCmd(os.Args[2:])
	case "htpasswd":
		err = htpasswdCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want image or htpasswd", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "imagetool: %v\n", err)
	os.Exit(1)
}

func htpasswdCmd(args []string) error {
	if len(args) != 1 || args[0] == "" {
		return errors.New("usage: imagetool htpasswd USER <password")
	}
	pw, err := io.ReadAll(bufio.NewReader(os.Stdin))
	if err != nil {
		return err
	}
	pw = bytes.TrimRight(pw, "\r\n")
	if len(pw) == 0 {
		return errors.New("htpasswd: empty password on stdin")
	}
	h, err := bcrypt.GenerateFromPassword(pw, bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	fmt.Printf("%s:%s\n", args[0], h)
	return nil
}

type imageFlags struct {
	tag, binaryPath, rootfs, entrypoint, cmd, user, workdir string
	tarballOut, ociLayout                                   string
	push, nonroot                                           bool
	binaries, files, env                                    list
}

func imageCmd(args []string) error {
	var f imageFlags
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.StringVar(&f.tag, "tag", "", "the image's reference (required)")
	fs.Var(&f.binaries, "platform-binary", "OS/ARCH=PATH: a platform of the image and its binary, put at -binary-path (repeatable; default: one image for this machine's platform)")
	fs.StringVar(&f.binaryPath, "binary-path", "", "where -platform-binary files go in the image, e.g. /hub")
	fs.Var(&f.files, "file", "SRC=DST[:MODE]: a file of this machine at DST in every platform's image, mode from SRC unless given in octal (repeatable)")
	fs.StringVar(&f.rootfs, "rootfs", "", "a tarball of a root filesystem to put under the files (default: none, the image has only its files)")
	fs.BoolVar(&f.nonroot, "nonroot", false, "add what distroless's nonroot base has: /etc/passwd and /etc/group with root and nonroot (65532), /home/nonroot, /tmp, this machine's CA bundle")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "comma separated ENTRYPOINT")
	fs.StringVar(&f.cmd, "cmd", "", "comma separated CMD")
	fs.Var(&f.env, "env", "K=V for the image's environment (repeatable; PATH defaults to /usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin)")
	fs.StringVar(&f.user, "user", "", "USER, e.g. 65532:65532 (default root)")
	fs.StringVar(&f.workdir, "workdir", "", "WORKDIR (default /)")
	fs.StringVar(&f.tarballOut, "tarball", "", "write a docker-archive tarball (one platform) for docker load, ctr import or kind load image-archive")
	fs.StringVar(&f.ociLayout, "oci-layout", "", "write an OCI image layout (an index of every platform) to this directory")
	fs.BoolVar(&f.push, "push", false, "push to -tag (an index of every platform); plain HTTP for localhost and private addresses")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.tag == "" {
		return errors.New("-tag is required")
	}
	if f.tarballOut == "" && f.ociLayout == "" && !f.push {
		return errors.New("say where the image goes: -tarball, -oci-layout or -push")
	}
	ref, err := name.ParseReference(f.tag, name.Insecure)
	if err != nil {
		return err
	}
	platforms := map[string]string{}
	for _, b := range f.binaries {
		p, file, ok := strings.Cut(b, "=")
		if !ok || f.binaryPath == "" {
			return fmt.Errorf("-platform-binary %q: want OS/ARCH=PATH, with -binary-path", b)
		}
		platforms[p] = file
	}
	if len(platforms) == 0 {
		platforms[runtime.GOOS+"/"+runtime.GOARCH] = ""
	}
	keys := make([]string, 0, len(platforms))
	for p := range platforms {
		keys = append(keys, p)
	}
	sort.Strings(keys)

	var images []v1.Image
	var plats []v1.Platform
	for _, p := range keys {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			return err
		}
		img, err := build(f, *pl, platforms[p])
		if err != nil {
			return fmt.Errorf("building %s for %s: %w", ref, p, err)
		}
		images = append(images, img)
		plats = append(plats, *pl)
	}

	if f.tarballOut != "" {
		if len(images) != 1 {
			return fmt.Errorf("-tarball holds one platform, %d given", len(images))
		}
		tag, ok := ref.(name.Tag)
		if !ok {
			return fmt.Errorf("-tarball needs a tag, not %s", ref)
		}
		if err := tarball.WriteToFile(f.tarballOut, tag, images[0]); err != nil {
			return err
		}
	}
	if f.ociLayout == "" && !f.push {
		return nil
	}
	idx := v1.ImageIndex(empty.Index)
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for i, img := range images {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plats[i]}})
	}
	if f.ociLayout != "" {
		if _, err := layout.Write(f.ociLayout, idx); err != nil {
			return err
		}
	}
	if f.push {
		// The local registries of make e2e-kind speak plain HTTP; name.Insecure lets ggcr fall
		// back to it for localhost and private addresses only.
		if err := remote.WriteIndex(ref, idx, remote.WithTransport(http.DefaultTransport)); err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
	}
	return nil
}

// entry is a file of a layer.
type entry struct {
	dst  string
	mode int64
	uid  int
	data func() ([]byte, error)
	dir  bool
}

func build(f imageFlags, p v1.Platform, binary string) (v1.Image, error) {
	img := empty.Image
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if f.rootfs != "" {
		l, err := tarball.LayerFromFile(f.rootfs)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	var entries []entry
	if f.nonroot {
		entries = append(entries, nonrootBase()...)
	}
	for _, spec := range f.files {
		src, dst, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("-file %q: want SRC=DST[:MODE]", spec)
		}
		e, err := fileEntry(src, dst)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	if binary != "" {
		e, err := fileEntry(binary, f.binaryPath+":0755")
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	if len(entries) > 0 {
		data, err := layerTar(entries)
		if err != nil {
			return nil, err
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
			tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	// containerd refuses an image whose config has no platform.
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: epoch}
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
	for _, e := range f.env {
		if strings.HasPrefix(e, "PATH=") {
			env[0] = e
		} else {
			env = append(env, e)
		}
	}
	if f.nonroot {
		env = append(env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	}
	cf.Config.Env = env
	cf.Config.User = f.user
	cf.Config.WorkingDir = f.workdir
	if f.entrypoint != "" {
		cf.Config.Entrypoint = strings.Split(f.entrypoint, ",")
	}
	if f.cmd != "" {
		cf.Config.Cmd = strings.Split(f.cmd, ",")
	}
	return mutate.ConfigFile(img, cf)
}

func fileEntry(src, dst string) (entry, error) {
	mode := int64(-1)
	if d, m, ok := strings.Cut(dst, ":"); ok {
		if _, err := fmt.Sscanf(m, "%o", &mode); err != nil {
			return entry{}, fmt.Errorf("-file %s: mode %q is not octal", dst, m)
		}
		dst = d
	}
	info, err := os.Stat(src)
	if err != nil {
		return entry{}, err
	}
	if !info.Mode().IsRegular() {
		return entry{}, fmt.Errorf("%s is not a regular file", src)
	}
	if mode < 0 {
		mode = int64(info.Mode().Perm())
	}
	return entry{dst: dst, mode: mode, data: func() ([]byte, error) { return os.ReadFile(src) }}, nil
}

// nonrootBase is what image-cloner's images need of distroless/static:nonroot: the users, a
// home and /tmp for user 65532, and CA certificates (the hub talks TLS to registries).
func nonrootBase() []entry {
	static := func(s string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(s), nil } }
	es := []entry{
		{dst: "/etc/passwd", mode: 0o644, data: static("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{dst: "/etc/group", mode: 0o644, data: static("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{dst: "/etc/nsswitch.conf", mode: 0o644, data: static("hosts: files dns\n")},
		{dst: "/home/nonroot", mode: 0o700, uid: 65532, dir: true},
		{dst: "/tmp", mode: 0o1777, dir: true},
	}
	for _, ca := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"} {
		if _, err := os.Stat(ca); err == nil {
			src := ca
			es = append(es, entry{dst: "/etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: func() ([]byte, error) { return os.ReadFile(src) }})
			break
		}
	}
	return es
}

// layerTar writes entries, and the directories above them, as one uncompressed tar.
func layerTar(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		var parents []string
		for d := path.Dir(p); d != "/" && d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		return nil
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].dst < entries[j].dst })
	for _, e := range entries {
		if !path.IsAbs(e.dst) {
			return nil, fmt.Errorf("%q is not an absolute path", e.dst)
		}
		if err := mkdirs(e.dst); err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(path.Clean(e.dst), "/")
		if e.dir {
			dirs[e.dst] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: epoch}); err != nil {
				return nil, err
			}
			continue
		}
		data, err := e.data()
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: e.mode, Uid: e.uid, Gid: e.uid, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
