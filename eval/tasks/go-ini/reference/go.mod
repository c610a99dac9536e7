module ini

go 1.19
