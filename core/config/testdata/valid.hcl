node = "n1"

store {
  embedded { data_dir = "data/etcd" }
  prefix = "/lucid"
}

api { listen = "127.0.0.1:8774" }

driver "fake" {
  plugin = "bin/plugin"
  config {
    boot_delay = "200ms"
    fail_spawn = false
  }
}

policy "validate" {
  module   = "bin/module.wasm.txt"
  settings = { forbid_actions = ["hardReboot"] }
  timeout  = "50ms"
  fallback = "allow"

  memory_mib           = 64
  max_memory_mib       = 32
  max_calls            = 1000
  log_lines_per_second = 5
}

reconciler {
  enabled  = false
  interval = "10s"
}

lease_ttl = "15s"
cache_dir = "cache/wasm"

executor {
  step_timeout  = "10m"
  step_timeouts = { create = "15m", resize = "30m" }
}

history {
  max_records = 500
  max_age     = "720h"
  deleted_ttl = "24h"
}

flavor "m1.small" {
  vcpus   = 1
  ram_mb  = 2048
  disk_gb = 20
}

flavor "m1.big" {
  name    = "Big"
  vcpus   = 8
  ram_mb  = 16384
  disk_gb = 0
}

image "cirros" {
  file       = "images/cirros.qcow2"
  min_ram_mb = 64
}

image "debian-12" {
  name        = "Debian 12"
  source      = "fake://debian-12"
  disk_format = "iso"
  min_disk_gb = 2
}

policy "reconcile" {
  module   = "bin/module.wasm.txt"
  fallback = "leave"
}
