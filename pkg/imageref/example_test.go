package imageref_test

import (
	"fmt"

	"github.com/image-cloner/image-cloner/pkg/imageref"
)

func ExampleParse() {
	for _, s := range []string{"nginx", "index.docker.io/library/nginx:1.25", "localhost:5000/app", "Nginx"} {
		ref, err := imageref.Parse(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(ref)
	}
	// Output:
	// docker.io/library/nginx:latest
	// docker.io/library/nginx:1.25
	// localhost:5000/app:latest
	// invalid image reference "Nginx": repository must be lowercase
}

func ExampleNamer_Backup() {
	src, err := imageref.Parse("nginx:1.25")
	if err != nil {
		panic(err)
	}
	for _, scheme := range []imageref.Scheme{imageref.Flat, imageref.Nested} {
		namer, err := imageref.NewNamer("quay.io/acme", scheme)
		if err != nil {
			panic(err)
		}
		backup, err := namer.Backup(src)
		if err != nil {
			panic(err)
		}
		fmt.Println(backup, namer.IsBackup(backup))
	}
	// Output:
	// quay.io/acme/docker.io_library_nginx:1.25 true
	// quay.io/acme/docker.io/library/nginx:1.25 true
}

func ExampleObjectName() {
	a, _ := imageref.Parse("nginx")
	b, _ := imageref.Parse("docker.io/library/nginx:latest")
	fmt.Println(imageref.ObjectName(a))
	fmt.Println(imageref.ObjectName(a) == imageref.ObjectName(b))
	// Output:
	// docker.io-library-nginx-latest-86cee2c10898a48f
	// true
}
