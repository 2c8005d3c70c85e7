#!/usr/bin/env python3
"""Picks some columns of a compare.py table (value and percentage) for the
README: table-columns.py TABLES.txt SECTION col1,col2,..."""
import re, sys
src, section, keep = sys.argv[1], sys.argv[2], sys.argv[3].split(',')
lines = open(src).read().splitlines()
out = []; on = False; header = None
for l in lines:
    if l.startswith('## ' + section + ':'):
        on = True; out.append('# ' + l[3:].split(';')[0]); continue
    if on and (l.startswith('## ') or l.startswith(section + ' spread')):
        break
    if not on or not l.strip():
        continue
    if l.startswith(section):
        header = l.split()[1:]; idx = [header.index(k) for k in keep]
        out.append(f"{'':20}" + ''.join(f"{k:>22}" for k in keep)); continue
    m = re.match(r'^(.*?\S)\s+(?=(?:n/a|[\d.]+) \()', l)
    label = m.group(1)
    cells = re.findall(r'(n/a|[\d.]+) \(\s*(n/a|-?[\d.]+)%?\)', l[m.end():])
    def cell(v, p):
        v = f"{float(v):>12.2f}" if v != 'n/a' else f"{v:>12}"
        p = f"{float(p):7.2f}%" if p != 'n/a' else f"{p:>8}"
        return f"{v} ({p})"
    row = f"{label:20}" + ''.join(cell(*cells[i]) for i in idx)
    out.append(row)
print('\n'.join(out))
