lease_ttl = "1s"
cache_dir = "bin/plugin"

store {
  embedded {
    data_dir             = "data/etcd"
    quota_mib            = 4
    compaction_revisions = 10
  }
}

api { listen = "127.0.0.1:8774" }

executor {
  step_timeout  = "forever"
  step_timeouts = {
    create  = "15m"
    migrate = "1h"
    resize  = "-30m"
  }
}

history {
  max_records = -1
  max_age     = "90d"
  deleted_ttl = "168h"
}

flavor "m1.small" {
  vcpus   = 0
  ram_mb  = 2048
  disk_gb = -20
}

flavor "m1.small" {
  vcpus   = 1
  ram_mb  = 512
  disk_gb = 1
}

flavor "big one" {
  name    = "m1.small"
  vcpus   = 8
  ram_mb  = 0
  disk_gb = 80
}

image "cirros" {
  file        = "images/missing.qcow2"
  disk_format = "qcow3"
}

image "debian" {
  file   = "images/cirros.qcow2"
  source = "fake://debian"
}

image "empty" {
  min_ram_mb = -1
}

driver "fake" {
  plugin   = "bin/plugin"
  checksum = "sha256:xyz"
}

policy "validate" {
  module         = "bin/module.wasm.txt"
  fallback       = "flag"
  memory_mib     = 32
  max_memory_mib = 64
  max_calls      = 0
}

policy "reconcile" {
  module               = "bin/module.wasm.txt"
  fallback             = "allow"
  log_lines_per_second = -5
}
