# Independent generator of the known vectors in tests/azure/test_sas.c (Python stdlib only).
# It builds the string-to-sign by hand from Microsoft's "Create a service SAS" and "Create an
# account SAS" layouts for version 2018-11-09 and signs with hmac/hashlib, sharing no code
# with sas.c. Run once: python3 tests/azure/gen_sas_vectors.py; paste the values into the test.
import base64, hashlib, hmac, calendar, time, urllib.parse
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
def sign(key_b64, sts):
    return base64.b64encode(hmac.new(base64.b64decode(key_b64), sts.encode(), hashlib.sha256).digest()).decode()
def blob_sts(acct, cont, blob, sp, st, se):
    fields = [sp, st, se, f"/blob/{acct}/{cont}/{blob}", "", "", "", "2018-11-09", "b", "", "", "", "", "", ""]
    return "\n".join(fields)
def acct_sts(acct, sp, srt, st, se):
    return "\n".join([acct, sp, "b", srt, st, se, "", "", "2018-11-09", ""])
st = calendar.timegm(time.strptime("2020-06-05T07:21:33Z", "%Y-%m-%dT%H:%M:%SZ"))
se = st + 35 * 60
print("st", st, "se", se)
sts = blob_sts("devstoreaccount1", "dmf", "82332ea8-7598-427b-bfe4-daef25ccf6e1", "rw", "2020-06-05T07:21:33Z", "2020-06-05T07:56:33Z")
print(repr(sts)); sig = sign(DEV_KEY, sts); print("sig", sig, urllib.parse.quote(sig, safe=""))
blob2 = "dir/a b+c&d=\u00e9.zip"
sts2 = blob_sts("devstoreaccount1", "dmf", blob2, "r", "", "2020-06-05T07:56:33Z")
sig2 = sign(DEV_KEY, sts2); print("sig2", sig2, urllib.parse.quote(sig2, safe=""), urllib.parse.quote(blob2, safe="/"))
key3 = base64.b64encode(bytes(range(65))).decode(); print("key3", key3)
sts3 = acct_sts("devstoreaccount1", "c", "c", "2020-06-05T07:21:33Z", "2020-06-05T07:56:33Z")
print("acct sig dev", urllib.parse.quote(sign(DEV_KEY, sts3), safe=""))
print("msg sig key3", sign(key3, "hello\nworld"))
