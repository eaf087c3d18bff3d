node = "n1"

store {
  embedded { data_dir = "data/etcd" }

api { listen = "127.0.0.1:8774" }
