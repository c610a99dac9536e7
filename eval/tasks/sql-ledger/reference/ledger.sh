#!/bin/sh
# A personal ledger in SQLite: sh ledger.sh DBFILE COMMAND [ARGS]
#   init                              create the table and the views (again: no change)
#   add DATE ACCOUNT AMOUNT [MEMO]    record a transaction, print its id
#   balance                           the sum per account
#   month YYYY-MM                     the sum per account for one month
#   list                              every transaction (id, date, account, amount, memo)
#   delete ID                         remove a transaction
set -u

here=$(cd "$(dirname "$0")" && pwd)
tab=$(printf '\t')

die() {
	echo "ledger: $*" >&2
	exit 1
}

usage() {
	sed -n '2,8s/^# \{0,1\}//p' "$here/ledger.sh" >&2
	exit 1
}

# q TEXT: TEXT as an SQL string literal
q() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"
}

# db SQL...: runs SQL on the ledger, stopping at the first error
db() {
	sqlite3 -bail -batch -separator "$tab" "$db" "$@"
}

# the amount of CENTS as text with two decimals
AMOUNT="(CASE WHEN cents < 0 THEN '-' ELSE '' END) || (abs(cents) / 100) || '.' || substr('0' || (abs(cents) % 100), -2)"

[ $# -ge 2 ] || usage
db=$1
cmd=$2
shift 2

need_init() {
	[ "$(db "SELECT count(*) FROM sqlite_master WHERE name = 'transactions';")" = 1 ] ||
		die "$db is not a ledger yet: run 'sh ledger.sh $db init' first"
}

case $cmd in
init)
	[ $# -eq 0 ] || usage
	cat "$here/schema.sql" "$here/views.sql" | sqlite3 -bail -batch "$db" || die "init failed"
	;;
add)
	[ $# -eq 3 ] || [ $# -eq 4 ] || usage
	day=$1 account=$2 amount=$3 memo=${4:-}
	need_init
	case $day in
	[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]) ;;
	*) die "not a date (YYYY-MM-DD): $day" ;;
	esac
	[ "$(db "SELECT date($(q "$day"), '+0 days') = $(q "$day");")" = 1 ] || die "not a calendar date: $day"
	printf '%s' "$account" | grep -Eq '^[A-Za-z0-9:_-]+$' || die "an account is letters, digits, ':', '-' and '_': '$account'"
	printf '%s' "$amount" | grep -Eq '^-?[0-9]+(\.[0-9]{1,2})?$' || die "not an amount with at most two decimals: $amount"
	db "INSERT INTO transactions(day, account, cents, memo)
	    VALUES ($(q "$day"), $(q "$account"), CAST(round($(q "$amount") * 100) AS INTEGER), $(q "$memo"));
	    SELECT last_insert_rowid();" || die "could not record the transaction"
	;;
balance)
	[ $# -eq 0 ] || usage
	need_init
	db "SELECT account, $AMOUNT FROM balances ORDER BY account;"
	;;
month)
	[ $# -eq 1 ] || usage
	case $1 in
	[0-9][0-9][0-9][0-9]-[01][0-9]) ;;
	*) die "not a month (YYYY-MM): $1" ;;
	esac
	need_init
	db "SELECT account, $AMOUNT FROM monthly WHERE month = $(q "$1") ORDER BY account;"
	;;
list)
	[ $# -eq 0 ] || usage
	need_init
	db "SELECT id, day, account, $AMOUNT, memo FROM transactions ORDER BY day, id;"
	;;
delete)
	[ $# -eq 1 ] || usage
	case $1 in
	'' | *[!0-9]*) die "not a transaction id: $1" ;;
	esac
	need_init
	[ "$(db "DELETE FROM transactions WHERE id = $1; SELECT changes();")" = 1 ] || die "no transaction $1"
	;;
*)
	echo "ledger: unknown command: $cmd" >&2
	usage
	;;
esac
