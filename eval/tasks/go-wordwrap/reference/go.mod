module wordwrap

go 1.19
