# Lucid's default operator config: one node, embedded etcd, the fake
# hypervisor and the default transition policy. Paths are relative to
# this file. Check it with: bin/lucid config validate --config config.hcl

node = "local"

store {
  embedded { data_dir = "data/etcd" }
  prefix = "/lucid"
}

api { listen = "127.0.0.1:8774" }

driver "fake" {
  plugin = "bin/lucid-driver-fake"
  config {
    boot_delay = "200ms"
  }
}

policy "validate" {
  module   = "bin/policies/transitions.wasm"
  settings = {}
}

# The reconciler (record versus hypervisor, decided by a reconcile
# policy) is not implemented yet; lucid serve warns while it is enabled.
reconciler {
  enabled  = false
  interval = "30s"
}
