module ttlcache

go 1.19
