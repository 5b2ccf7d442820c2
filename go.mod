module github.com/shmmap-go/shmmap

go 1.26.0

require golang.org/x/sys v0.50.0
