module gowc

go 1.19
