# Lucid's default operator config: one node, embedded etcd, the fake
# hypervisor and the default transition policy. Paths are relative to
# this file. Check it with: bin/lucid config validate --config config.hcl

node = "local"

store {
  embedded { data_dir = "data/etcd" }
  prefix = "/lucid"
}

api {
  listen = "127.0.0.1:8774"
  # Each user's changing requests (POST, PUT, DELETE; per address for
  # token requests): 20 a second with bursts of 40. A request over the
  # limit waits up to max_delay (1s) for its turn, then gets 429 with
  # Retry-After. Remove the block for load tests from one user.
  rate_limit {
    requests_per_second = 20
    burst               = 40
  }
}

# Requests need a token. On its first start lucid serve creates the user
# admin (role admin in project admin) with a generated password, stored
# only hashed, and writes it to data/clouds.yaml (mode 0600), which
# bin/lucid and `openstack --os-cloud lucid` use. More users and projects
# go in user and project blocks; passwords as bcrypt hashes or secret
# files, never in this file.
auth {
  enabled   = true
  token_ttl = "1h"
}

# Every project's quota, Nova's defaults; a project block can override
# them (-1 is unlimited).
quota {
  instances = 10
  cores     = 20
  ram_mb    = 51200
}

# The catalogs clients choose from: the label is the id in flavorRef and
# imageRef. The fake driver ignores image sources; a real driver reads
# them (file = "images/cirros.qcow2" names a file beside this config).
flavor "m1.tiny" {
  vcpus   = 1
  ram_mb  = 512
  disk_gb = 1
}

flavor "m1.small" {
  vcpus   = 1
  ram_mb  = 2048
  disk_gb = 20
}

flavor "m1.medium" {
  vcpus   = 2
  ram_mb  = 4096
  disk_gb = 40
}

image "cirros" { source = "fake://cirros" }

image "debian-12" { source = "fake://debian-12" }

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

# What to do when a record and its hypervisor disagree. The defaults:
# a VM whose power changed behind Lucid's back is corrected in the record
# (Nova's behaviour), ERROR is never changed, a vanished VM makes its
# instance ERROR, a VM nobody recorded is flagged, a step that outlived
# its timeout ends in ERROR. Each setting takes correct, flag or leave
# (power mismatches also enforce); all "flag" is an observe-only mode.
policy "reconcile" {
  module   = "bin/policies/reconcile.wasm"
  settings = {
    on_power_mismatch = "correct"
    on_error          = "leave"
    on_vanished       = "correct"
    on_unmanaged      = "flag"
    on_stuck          = "correct"
    grace             = "0s"
  }
}

# The sweep: every interval, each node compares its instances with its
# drivers' VMs (driver events and plugin restarts trigger a look at once).
# enabled = false turns it off entirely.
reconciler {
  enabled  = true
  interval = "30s"
}
