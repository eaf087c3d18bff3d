// Package driverpb holds the protobuf messages and gRPC stubs of the driver
// wire protocol (lucid.driver.v1). Vendors do not use it directly: the
// parent package sdk/driver wraps it behind the Driver interface.
//
// To regenerate after editing driver.proto (needs protoc, protoc-gen-go and
// protoc-gen-go-grpc on PATH, e.g. PATH=$PATH:$HOME/go/bin):
//
//	go generate ./sdk/driver/driverpb
package driverpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative driver.proto
