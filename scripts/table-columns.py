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
    m = re.match(r'^(.*?\S)\s+(?=[\d.]+ \()', l)
    label = m.group(1)
    cells = re.findall(r'([\d.]+) \(\s*(-?[\d.]+)%\)', l[m.end():])
    row = f"{label:20}" + ''.join(f"{float(cells[i][0]):>12.2f} ({float(cells[i][1]):7.2f}%)" for i in idx)
    out.append(row)
print('\n'.join(out))
