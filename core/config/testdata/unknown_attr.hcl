store {
  embedded { data_dir = "data/etcd" }
}

api {
  listen = "127.0.0.1:8774"
  port   = 8774
}

driver "fake" { plugin = "bin/plugin" }
