store {
  embedded { data_dir = "data/etcd" }
}

api { listen = "127.0.0.1:8774" }

driver "fake" {
  plugin = "bin/lucid-driver-nope"
}
