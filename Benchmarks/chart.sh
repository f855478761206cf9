#!/usr/bin/env bash
# Draws a benchmark table as an SVG bar chart with gnuplot: one panel per measure, one bar per
# server in the table's order, Star in orange and its peers in grey, the value printed at the end
# of each bar, and each panel's title saying whether higher or lower is better. A footer gives the
# run's date, machine and command (the table file's "- Date:", "- Machine:", "- Command:" lines).
#
#   ./chart.sh results/ws.md results/ws.svg        # run-ws.sh's side-by-side table
#   ./chart.sh results/http.md results/http.svg    # run-http.sh's table
#   NOTE="Star at commit 9fe5c79" ./chart.sh results/ws.md ws.svg   # a third footer line (else
#                                                  # the table file's "- Note:" line, if any)
#   ./chart.sh --optional IN.md OUT.svg            # as the benchmark scripts call it: without
#                                                  # gnuplot, or if drawing fails, one line and exit 0
#
# The table's shape picks the panels: run-ws.sh's (a row per server: (a), (a8), (b), (c), (d),
# (d2)) or run-http.sh's (a row per server and route: req/s and p99 of each route). Only the first
# table whose header starts "| server |" is read; a measure missing from it gets no panel, a cell
# that is not a number ("n/a") no bar. Only OUT.svg is written. Needs gnuplot (Debian:
# gnuplot-nox). The README's images (docs/images/benchmarks-*.svg) are copies a human makes of a
# run's chart: see Benchmarks/README.md, "chart.sh".
set -euo pipefail

OPTIONAL=
if [[ ${1:-} == --optional ]]; then OPTIONAL=1; shift; fi
if (($# != 2)); then
    echo "usage: chart.sh [--optional] TABLE.md OUT.svg" >&2
    exit 2
fi
IN=$1 OUT=$2
if [[ -n $OPTIONAL ]]; then
    if ! command -v gnuplot >/dev/null; then
        echo "(no chart: install gnuplot-nox, then run ./chart.sh $IN $OUT)"
        exit 0
    fi
    "$0" "$IN" "$OUT" || echo "(chart.sh failed to draw $OUT; the table in $IN is complete)" >&2
    exit 0
fi
command -v gnuplot >/dev/null || { echo "chart.sh: needs gnuplot (apt-get install gnuplot-nox)" >&2; exit 1; }
[[ -r $IN ]] || { echo "chart.sh: cannot read $IN" >&2; exit 1; }

# ---- reading tables: each shape gives "measure<TAB>server<TAB>cell" lines, rows in table order

# The first markdown table whose header starts "| server |": its lines as tab-separated trimmed
# cells, the header first, the "| --- |" line left out.
first_table() {
    awk '
        !on && /^\| *server *\|/ { on = 1 }
        !on { next }
        !/^\|/ { exit }
        /^\| *:?-+:? *\|/ { next }
        { line = $0; sub(/^\| */, "", line); sub(/ *\| *$/, "", line); gsub(/ *\| */, "\t", line); print line }
    ' "$1"
}

# A row per server, a column per measure (run-ws.sh): the measure is the column's header.
wide_cells() {
    first_table "$1" | awk -F'\t' '
        NR == 1 { for (i = 2; i <= NF; i++) head[i] = $i; next }
        { for (i = 2; i <= NF; i++) print head[i] "\t" $1 "\t" $i }'
}

# A row per server and route (run-http.sh): the measure is "ROUTE HEADER", e.g. "/json req/s".
route_cells() {
    first_table "$1" | awk -F'\t' '
        NR == 1 { for (i = 3; i <= NF; i++) head[i] = $i; next }
        { for (i = 3; i <= NF; i++) print $2 " " head[i] "\t" $1 "\t" $i }'
}

# ---- the shapes: how to read each and what to draw. A panel: measure|title|better|decimals|unit

header=$(first_table "$IN" | head -n1)
if [[ -z $header ]]; then
    echo "chart.sh: no table with a '| server |' header in $IN" >&2
    exit 1
elif [[ $header == *"(a) msg/s"* ]]; then
    CELLS=wide_cells
    HEADING="WebSocket echo servers side by side (Benchmarks/run-ws.sh)"
    SETUP_LINE='^- Server on core'
    PANELS=(
        "(a) msg/s|(a) 32 B text × 64 conns: msg/s|higher|0|"
        "(a8) msg/s|(a8) the same, 8 in flight: msg/s|higher|0|"
        "(b) MB/s|(b) 64 KiB binary × 16 conns: MB/s|higher|0|"
        "(c) handshakes/s|(c) handshakes/s|higher|0|"
        "(d) KiB/idle conn|(d) RSS per idle connection|lower|1| KiB"
        "(d2) KiB/idle conn after 70 kB|(d2) the same after one 70 kB message|lower|1| KiB"
    )
elif [[ $header == *$'\t'route$'\t'* ]]; then
    CELLS=route_cells
    HEADING="HTTP hello servers side by side (Benchmarks/run-http.sh)"
    SETUP_LINE='^wrk '
    PANELS=(
        "/plaintext req/s|GET /plaintext: req/s|higher|0|"
        "/json req/s|GET /json: req/s|higher|0|"
        "/plaintext p99 (ms)|GET /plaintext: p99 latency|lower|2| ms"
        "/json p99 (ms)|GET /json: p99 latency|lower|2| ms"
    )
else
    echo "chart.sh: $IN: a table this script does not know (header: ${header//$'\t'/ | })" >&2
    exit 1
fi

# The words around the chart, from the lines run-ws.sh and run-http.sh write above their tables.
meta() { sed -n "s/$1//p" "$IN" | head -n1 | tr -d '`'; }  # the rest of the first line matching
SETUP=$(grep -m1 -e "$SETUP_LINE" "$IN" | sed 's/^- //' | tr -d '`' || true)
DATE=$(meta '^- Date: ')
MACHINE=$(meta '^- Machine: ')
COMMAND=$(meta '^- Command: ')
NOTE=${NOTE:-$(meta '^- Note: ')}
FOOTER1="${DATE:-date not recorded}${MACHINE:+ · $MACHINE}"
FOOTER2="${COMMAND:+Command: $COMMAND}"

# ---- drawing: the cells and the panels in, a gnuplot script out

gnuplot_script() {  # stdin: cells; $1: the SVG to write. Strings go in through the environment,
    # which awk takes as they are (-v would read backslashes as escapes).
    CHART_OUT=$1 CHART_SPECS=$(printf '%s\n' "${PANELS[@]}") CHART_HEADING=$HEADING CHART_SETUP=$SETUP \
        CHART_F1=$FOOTER1 CHART_F2=$FOOTER2 CHART_F3=${NOTE:-} awk -F'\t' '
    function q(s) { gsub(/\047/, "\047\047", s); return "\047" s "\047" }
    function name(s,   key, rest) {  # "hb" -> "Hummingbird"; "star-hello" -> "Star"; keeps a suffix
        key = s; rest = ""
        if (match(key, / /)) { rest = substr(key, RSTART); key = substr(key, 1, RSTART - 1) }
        sub(/-hello$/, "", key)
        if (key in names) key = names[key]
        return key rest
    }
    function grouped(v, d,   s, ip, frac, neg) {  # 86544 -> "86,544"
        s = sprintf("%." d "f", v)
        neg = (substr(s, 1, 1) == "-"); if (neg) s = substr(s, 2)
        ip = s; frac = ""
        if (match(s, /\./)) { ip = substr(s, 1, RSTART - 1); frac = substr(s, RSTART) }
        while (length(ip) > 3) { frac = "," substr(ip, length(ip) - 2) frac; ip = substr(ip, 1, length(ip) - 3) }
        return (neg ? "-" : "") ip frac
    }
    function sx(px) { return sprintf("%.5f", px / W) }
    function sy(px) { return sprintf("%.5f", 1 - px / H) }
    BEGIN {
        out = ENVIRON["CHART_OUT"]; specs = ENVIRON["CHART_SPECS"]; heading = ENVIRON["CHART_HEADING"]
        setup = ENVIRON["CHART_SETUP"]; f1 = ENVIRON["CHART_F1"]; f2 = ENVIRON["CHART_F2"]; f3 = ENVIRON["CHART_F3"]
        names["star"] = "Star"; names["hb"] = "Hummingbird"; names["vapor"] = "Vapor"
        names["nio"] = "raw SwiftNIO"; names["uvicorn"] = "Uvicorn + Starlette"; names["picows"] = "picows"
        STAR = "#E8590C"; PEER = "#A9B1BB"; INK = "#222222"; SOFT = "#5F6B76"
    }
    {
        if (!($2 in row)) { row[$2] = ++n; server[n] = $2 }
        v = $3; gsub(/[, ]|KiB|ms|µs/, "", v)
        if (v ~ /^[0-9]+(\.[0-9]*)?$/) value[$1, row[$2]] = v + 0
        measured[$1] = 1
    }
    END {
        np = 0
        m = split(specs, lines, "\n")
        for (i = 1; i <= m; i++) {
            if (lines[i] == "") continue
            split(lines[i], f, "|")
            if (!(f[1] in measured)) continue
            np++; key[np] = f[1]; title[np] = f[2] ", " f[3] " is better"
            decimals[np] = f[4]; unit[np] = f[5]
        }
        if (np == 0 || n == 0) { print "chart.sh: no measures to draw" > "/dev/stderr"; exit 1 }

        # Geometry in pixels, top down: heading, rows of two panels, footer.
        W = 900; COLS = 2; GAP = 24
        longest = 0
        for (s = 1; s <= n; s++) if (length(name(server[s])) > longest) longest = length(name(server[s]))
        NAMEW = 7 * longest + 22; if (NAMEW < 70) NAMEW = 70
        HEAD = (setup != "") ? 62 : 44
        PTITLE = 26; BAR = 26; PAD = 20
        PH = PTITLE + n * BAR + PAD
        rows = int((np + COLS - 1) / COLS)
        nf = 1 + (f2 != "") + (f3 != "")
        FOOT = 12 + 16 * nf
        H = HEAD + rows * PH + FOOT
        PW = (W - GAP) / COLS

        print "set terminal svg size " W "," H " font \"sans-serif,12\" background \"#ffffff\""
        print "set output " q(out)
        print "set termoption noenhanced"
        print "unset key; unset xtics; unset ytics; unset grid; set border 0"
        print "set style fill solid 1.0 noborder"
        for (p = 1; p <= np; p++) {
            print "$p" p " << EOD"
            for (s = 1; s <= n; s++) {
                star = (tolower(name(server[s])) ~ /^star/)
                if ((key[p], s) in value) {
                    v = value[key[p], s]
                    print s, v, "\"" grouped(v, decimals[p]) unit[p] "\"", star
                } else print s, 0, "\"n/a\"", star
            }
            print "EOD"
        }
        print "set multiplot"
        for (p = 1; p <= np; p++) {
            c = (p - 1) % COLS; r = int((p - 1) / COLS)
            x0 = c * (PW + GAP); top = HEAD + r * PH
            max = 0
            for (s = 1; s <= n; s++) if (((key[p], s) in value) && value[key[p], s] > max) max = value[key[p], s]
            if (max <= 0) max = 1
            print "unset label"
            if (p == 1) {  # the heading and the footer, once
                print "set label " q(heading) " at screen " sx(10) ", screen " sy(24) " left font \"sans-serif:Bold,16\" tc rgb \"" INK "\""
                if (setup != "")
                    print "set label " q(setup) " at screen " sx(10) ", screen " sy(46) " left font \"sans-serif,12\" tc rgb \"" SOFT "\""
                split(f1 "\n" f2 "\n" f3, foot, "\n"); y = H - FOOT + 18
                for (i = 1; i <= 3; i++) if (foot[i] != "") {
                    print "set label " q(foot[i]) " at screen " sx(10) ", screen " sy(y) " left font \"sans-serif,11\" tc rgb \"" SOFT "\""
                    y += 16
                }
            }
            print "set label " q(title[p]) " at screen " sx(x0 + 10) ", screen " sy(top + 17) " left font \"sans-serif:Bold,12\" tc rgb \"" INK "\""
            for (s = 1; s <= n; s++) {
                star = (tolower(name(server[s])) ~ /^star/)
                print "set label " q(name(server[s])) " at first 0, first " s " right offset -0.8,0 " \
                    (star ? "font \"sans-serif:Bold,12\" tc rgb \"" STAR "\"" : "tc rgb \"" INK "\"")
            }
            print "set lmargin at screen " sx(x0 + NAMEW) "; set rmargin at screen " sx(x0 + PW - 8)
            print "set tmargin at screen " sy(top + PTITLE) "; set bmargin at screen " sy(top + PTITLE + n * BAR)
            # Room right of the longest bar for its value: about 8 px per character.
            print "set xrange [0:" max * (PW - 8 - NAMEW) / (PW - 8 - NAMEW - 8 * (length(grouped(max, decimals[p]) unit[p]) + 2)) "]"
            print "set yrange [" n + 0.5 ":0.5]"
            print "plot $p" p " using (0):1:(0):2:($1-0.36):($1+0.36):($4 > 0 ? " hex(STAR) " : " hex(PEER) ") with boxxyerror lc rgb variable, \\"
            print "     $p" p " using 2:1:3 with labels left offset 0.5,0 tc rgb \"" INK "\""
        }
        print "unset multiplot"
    }
    function hex(c) { return "0x" substr(c, 2) }
    '
}

tmp=$(mktemp "${OUT%/*}/.chart.XXXXXX" 2>/dev/null || mktemp)
trap 'rm -f "$tmp" "$tmp.gp"' EXIT
"$CELLS" "$IN" | gnuplot_script "$tmp" >"$tmp.gp"
gnuplot "$tmp.gp"
# gnuplot 5.4's SVG terminal passes "sans-serif:Bold" through as a family name: make it a weight.
# Its <title>, "Gnuplot", becomes the heading (a constant of this script: nothing to escape).
sed -i -e 's/font-family="sans-serif:Bold"/font-family="sans-serif" font-weight="bold"/g' \
    -e "s|^<title>Gnuplot</title>|<title>$HEADING</title>|" "$tmp"
mv -f "$tmp" "$OUT"
chmod 644 "$OUT"
echo "chart: $OUT"
