module rpn

go 1.19
