//! A fleet on loopback: three aftercart nodes (the real binary) sharing one real
//! redis-server. Needs the `redis` feature and `redis-server` on the PATH
//! (`tests/cluster/run` installs it).

mod fleet;
mod redis;
