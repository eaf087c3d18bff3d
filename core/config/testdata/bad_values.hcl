store {
  embedded { data_dir = "data/etcd" }
  endpoints = ["http://127.0.0.1:2379"]
}

api { listen = "8774" }

driver "fake" { plugin = "bin/plugin" }
driver "fake" { plugin = "bin/plugin" }

policy "admission" {
  module = "bin/module.wasm.txt"
}

policy "validate" {
  module   = "bin/missing.wasm"
  settings = "strict"
  timeout  = "soon"
}

reconciler {
  interval = "-5s"
}
