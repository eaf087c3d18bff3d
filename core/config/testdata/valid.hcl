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
}

reconciler {
  enabled  = false
  interval = "10s"
}
