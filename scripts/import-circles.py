#!/usr/bin/env python3
"""Fails when the engine's modules import each other in a circle of more than
two files (docs/architecture.md: arrows point down). Usage: import-circles.py [SRC]"""
import os, re, glob, sys
os.chdir(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "engine", "src"))
sys.setrecursionlimit(10000)
files=[f for f in glob.glob('**/*.rs',recursive=True) if not f.endswith('tests.rs') and '/tests/' not in f and not f.startswith('tests/')]
def modpath(f):
    p=f[:-3]
    if p.endswith('/mod'): p=p[:-4]
    return p.replace('/','::')
names={modpath(f):f for f in files}
graph={}
for f in files:
    s=open(f).read()
    s=re.sub(r'//[^\n]*','',s)
    s=s.split('#[cfg(test)]')[0]
    me=modpath(f)
    deps=set()
    for m in re.finditer(r'use crate::\{(.*?)\};', s, re.S):
        depth=0;cur=''
        for ch in m.group(1):
            if ch=='{': depth+=1
            if ch=='}': depth-=1
            if ch==',' and depth==0: deps.add(cur.strip()); cur=''
            else: cur+=ch
        deps.add(cur.strip())
    for m in re.finditer(r'crate::([\w:]+)', s): deps.add(m.group(1))
    isdir=f.endswith('mod.rs')
    parent = me if isdir else (me.rsplit('::',1)[0] if '::' in me else '')
    for m in re.finditer(r'use super::\{(.*?)\};', s, re.S):
        for part in m.group(1).split(','):
            part=part.strip()
            if part: deps.add((parent.rsplit('::',1)[0]+'::' if isdir and '::' in parent else (parent+'::' if parent and not isdir else ''))+part)
    for m in re.finditer(r'super::(\w[\w:]*)', s):
        base = parent if not isdir else (parent.rsplit('::',1)[0] if '::' in parent else '')
        deps.add((base+'::' if base else '')+m.group(1))
    res=set()
    for d in deps:
        d=re.match(r'[\w:]*',d).group(0)
        parts=[p for p in d.split('::') if p]
        for i in range(len(parts),0,-1):
            cand='::'.join(parts[:i])
            if cand in names and cand!=me:
                res.add(cand); break
    graph[me]=res
graph.pop('lib',None)
for k in graph: graph[k].discard('lib')
idx={};low={};st=[];on=set();sccs=[];c=[0]
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in graph.get(v,()):
        if w not in graph: continue
        if w not in idx: sc(w); low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        sccs.append(comp)
for v in list(graph):
    if v not in idx: sc(v)
big=[c for c in sccs if len(c)>1]
for comp in big:
    if len(comp) > 2:
        print("import circle of %d modules: %s" % (len(comp), " -> ".join(sorted(comp))))
sys.exit(1 if any(len(c) > 2 for c in big) else 0)
