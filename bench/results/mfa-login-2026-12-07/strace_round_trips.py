import re,sys,collections,statistics
lines=open('trace.txt').read().splitlines()
# merge unfinished/resumed: keep only complete or resumed lines with fd
ev=[]
pend={}
for l in lines:
    m=re.match(r'(\d+) (\d+):(\d+):([\d.]+) (.*)',l)
    if not m: continue
    tid=m.group(1); t=int(m.group(2))*3600+int(m.group(3))*60+float(m.group(4)); rest=m.group(5)
    if rest.endswith('<unfinished ...>'):
        pend[tid]=(t,rest); continue
    if rest.startswith('<... '):
        if tid in pend:
            t0,r0=pend.pop(tid); rest=r0.replace('<unfinished ...>','')+rest.split('resumed>',1)[1]; t=t0
    mm=re.match(r'(\w+)\((\d+),\s*(.*)',rest)
    if not mm: continue
    ev.append((t,tid,mm.group(1),int(mm.group(2)),mm.group(3)))
ev.sort()
reqs=[]
cur=None
for e in ev:
    t,tid,call,fd,rest=e
    if call in('recvfrom','read') and re.match(r'"(POST|GET) ',rest):
        path=re.match(r'"(?:POST|GET) (\S+)',rest).group(1)
        cur={'path':path,'t0':t,'fd':fd,'ev':[]}
        continue
    if cur and call in('sendto','write','writev') and fd==cur['fd'] and 'HTTP/1.1' in rest[:20]:
        status=re.search(r'HTTP/1.1 (\d+)',rest).group(1)
        cur['t1']=t; cur['status']=status; reqs.append(cur); cur=None; continue
    if cur: cur['ev'].append(e)
out=collections.defaultdict(list)
for r in reqs:
    sends=[e for e in r['ev'] if e[2]=='sendto' and e[4].startswith('"\\27\\3\\3')]
    fds=collections.Counter(e[3] for e in sends)
    recvs=[e for e in r['ev'] if e[2]=='recvfrom' and e[4].startswith('"\\27\\3\\3')]
    key=(r['path'],r['status'])
    first=sends[0][0]-r['t0'] if sends else None
    lastsend=sends[-1][0]-r['t0'] if sends else None
    out[key].append(((r['t1']-r['t0'])*1e3,len(sends),dict(fds),len(set(e[1] for e in sends)), first*1e3 if first else None,lastsend*1e3 if lastsend else None))
for k,v in out.items():
    print(k,len(v),'median ms',round(statistics.median(x[0] for x in v),2),'PG sends',[x[1] for x in v][:12],'fds',v[-1][2],'first PG send at',round(statistics.median(x[4] for x in v if x[4]),2),'last at',round(statistics.median(x[5] for x in v if x[5]),2))
print()
def timeline(r):
    print(r['path'], r['status'], round((r['t1']-r['t0'])*1e3,2))
    prev=r['t0']
    for t,tid,call,fd,rest in r['ev']:
        if call=='sendto' and rest.startswith('"\\27\\3\\3'):
            n=re.search(r'= (\d+) <',rest); print(f"  +{(t-r['t0'])*1e3:7.3f} tid {tid} send fd {fd} {n.group(1) if n else ''} bytes")
        elif call=='poll':
            d=re.search(r'<([\d.]+)>',rest); print(f"  +{(t-r['t0'])*1e3:7.3f} tid {tid}   poll fd {fd}? wait {float(d.group(1))*1e3:.3f} ms" if d else '')
        elif call=='recvfrom' and fd not in (24,25) and tid!=None and rest.startswith('"\\27\\3\\3') and '5, 0' in rest:
            pass
        elif call=='write' and fd in(17,21):
            print(f"  +{(t-r['t0'])*1e3:7.3f} tid {tid}   wake (eventfd {fd})")
    print(f"  +{(r['t1']-r['t0'])*1e3:7.3f} response")
v=[r for r in reqs if r['path']=='/auth/mfa/verify/']
timeline(v[-2])
p=[r for r in reqs if r['path']=='/auth/' and r['status']=='200']
timeline(p[-1])
a=[r for r in reqs if r['path']=='/auth/' and r['status']=='401']
timeline(a[-1])
