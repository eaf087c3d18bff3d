// Package driverpb holds the protobuf messages and gRPC stubs of the driver
// wire protocol (lucid.driver.v1). Vendors do not use it directly: the
// parent package sdk/driver wraps it behind the Driver interface.
//
// To regenerate after editing driver.proto, with the tool versions named in
// the generated files' headers (protoc 3.21.12 is Debian 12's
// protobuf-compiler; protoc-gen-go matches go.mod's google.golang.org/protobuf):
//
//	apt-get install -y protobuf-compiler
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
//	PATH=$PATH:$(go env GOPATH)/bin go generate ./sdk/driver/driverpb
//
// driver.proto imports google/protobuf/timestamp.proto, which protoc finds
// in its own include directory.
package driverpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative driver.proto
