using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// The written list of value classes: for every field of every step kind, the classes of values
/// that matter to EPT code (page sizes, the alignment of each address to each page size, where a
/// range ends relative to 2^MAXPHYADDR, permission sets, memory types, levels and bits of raw
/// edits), and for every access what the state it met was made of (EPT memory type x guest PAT
/// type, PAT index, CPL x U/S x WP x SMEP x NXE, guest XD levels, the EPT leaf's permissions
/// under MBEC, a re-probe after a raw write and an INVEPT). Code coverage cannot see these: a
/// table lookup is not a branch. A class is named <c>GROUP=LABEL</c>; its index is its feature.
/// </summary>
public static class ValueClasses
{
    private static readonly List<string> AllNames = new(512);

    internal static readonly string[] AlignLabels = ["unaligned", "4K", "2M", "1G"];
    internal static readonly string[] SizeLabels = ["4K", "2M", "1G", "4K-multiple", "unaligned"];
    internal static readonly string[] LimitLabels = ["below", "ends-at-limit", "crosses", "above"];
    internal static readonly string[] TriState = ["absent", "0", "1"];
    internal static readonly string[] EptTypeLabels = ["UC", "WC", "WT", "WP", "WB"];
    internal static readonly string[] PatTypeLabels = ["UC", "WC", "WT", "WP", "WB", "UC-"];

    /// <summary>EPT bits a raw edit sets or clears, by class: bits 0-11 and 63 each, an address bit below MAXPHYADDR, one at or above it, another high bit.</summary>
    internal static readonly string[] EditBitLabels =
        ["r", "w", "x", "mt0", "mt1", "mt2", "ipat", "large", "a", "d", "u", "bit11", "addr", "above-maxphyaddr", "bits52-62", "suppress-ve"];

    /// <summary>Guest bits a <c>gedit</c> sets or clears.</summary>
    internal static readonly string[] GuestBitLabels =
        ["p", "rw", "us", "pwt", "pcd", "a", "d", "ps-or-pat", "g", "bits9-11", "pat12", "addr", "reserved", "xd"];

    // ---- configuration
    internal static readonly int CpuMaxPhyAddr = Group("cpu.maxphyaddr", "absent", "36", "39", "40", "46", "48", "52", "other");
    internal static readonly int CpuExecOnly = Group("cpu.exec-only", TriState);
    internal static readonly int CpuPage2M = Group("cpu.page2m", TriState);
    internal static readonly int CpuPage1G = Group("cpu.page1g", TriState);
    internal static readonly int CpuAd = Group("cpu.ad", TriState);
    internal static readonly int CpuMbec = Group("cpu.mbec", TriState);
    internal static readonly int CpuWalk5 = Group("cpu.walk5", TriState);
    internal static readonly int CpuAdvExit = Group("cpu.adv-exit-info", TriState);
    internal static readonly int CpuEptpUc = Group("cpu.eptp-uc", TriState);
    internal static readonly int CpuEptpWb = Group("cpu.eptp-wb", TriState);
    internal static readonly int EptpMt = Group("eptp.mt", "absent", "UC", "WB");
    internal static readonly int EptpWalk = Group("eptp.walk", "absent", "4", "5");
    internal static readonly int EptpAd = Group("eptp.ad", TriState);
    internal static readonly int EptpRawMt = Group("eptp.raw.mt", "0", "1", "2", "3", "4", "5", "6", "7");
    internal static readonly int EptpRawWalk = Group("eptp.raw.walk-1", "0", "1", "2", "3", "4", "5", "6", "7");
    internal static readonly int EptpRawAd = Group("eptp.raw.ad", "0", "1");
    internal static readonly int EptpRawReserved = Group("eptp.raw.bits7-11", "clear", "set");
    internal static readonly int ControlsMbec = Group("controls.mbec", TriState);
    internal static readonly int GuestPaging = Group("guest.paging", "off", "4level");
    internal static readonly int GuestWp = Group("guest.wp", TriState);
    internal static readonly int GuestNxe = Group("guest.nxe", TriState);
    internal static readonly int GuestSmep = Group("guest.smep", TriState);
    internal static readonly int GuestPat = Group("guest.pat", "absent", "power-on", "other");
    internal static readonly int GuestCr3 = Group("guest.cr3", "at-tables-start", "elsewhere");

    // ---- operations
    internal static readonly int MapSize = Group("map.size", SizeLabels);
    internal static readonly int MapGpaAlign = Group("map.size x gpa-align x hpa-align", Product(["4K", "2M", "1G"], ["4K", "2M", "1G"], ["4K", "2M", "1G"]));
    internal static readonly int MapUnaligned = Group("map.unaligned", "gpa", "hpa");
    internal static readonly int MapPerm = Group("map.perm", PermissionLabels());
    internal static readonly int MapMt = Group("map.mt", "absent", "0", "1", "2", "3", "4", "5", "6", "7");
    internal static readonly int MapIpat = Group("map.ipat", TriState);
    internal static readonly int MapLimit = Group("map.range", LimitLabels);
    internal static readonly int UnmapSize = Group("unmap.size", SizeLabels);
    internal static readonly int UnmapAlign = Group("unmap.gpa-align", AlignLabels);
    internal static readonly int UnmapLimit = Group("unmap.range", LimitLabels);
    internal static readonly int ProtectSize = Group("protect.size", SizeLabels);
    internal static readonly int ProtectAlign = Group("protect.gpa-align", AlignLabels);
    internal static readonly int ProtectLimit = Group("protect.range", LimitLabels);
    internal static readonly int ProtectPerm = Group("protect.perm", PermissionLabels());
    internal static readonly int RetypeSize = Group("retype.size", SizeLabels);
    internal static readonly int RetypeAlign = Group("retype.gpa-align", AlignLabels);
    internal static readonly int RetypeLimit = Group("retype.range", LimitLabels);
    internal static readonly int RetypeMt = Group("retype.mt", "0", "1", "2", "3", "4", "5", "6", "7");
    internal static readonly int RetypeIpat = Group("retype.ipat", TriState);
    internal static readonly int SplitAlign = Group("split.gpa-align", AlignLabels);
    internal static readonly int MergeSize = Group("merge.size", "2M", "1G", "other");
    internal static readonly int MergeAlign = Group("merge.gpa-align", AlignLabels);
    internal static readonly int MemoryMt = Group("memory.mt", "0", "1", "2", "3", "4", "5", "6", "7");
    internal static readonly int MemoryStart = Group("memory.start-align", AlignLabels);
    internal static readonly int MemoryEnd = Group("memory.end-align", AlignLabels);
    internal static readonly int IdentityOffset = Group("identity-map.offset-align", "absent", "4K", "2M", "1G", "zero");
    internal static readonly int IdentityFrom = Group("identity-map.offset-from-align", "absent", "4K", "2M", "1G");
    internal static readonly int Invept = Group("invept.type", "single", "global");

    // ---- raw edits
    internal static readonly int EditLevel = Group("edit.level", "1", "2", "3", "4", "5");
    internal static readonly int EditSet = Group("edit.set", EditBitLabels);
    internal static readonly int EditClear = Group("edit.clear", EditBitLabels);
    internal static readonly int EditLeafHpa = Group("edit.leaf-hpa", "absent", "aligned", "misaligned");
    internal static readonly int PokeValue = Group("poke.value", "zero", "present-entry", "other");
    internal static readonly int GMapSize = Group("gmap.size", SizeLabels);
    internal static readonly int GMapPerm = Group("gmap.perm", "none", "w", "u", "wu", "x", "wx", "ux", "wux");
    internal static readonly int GMapGva = Group("gmap.gva", "low-half", "high-half", "non-canonical");
    internal static readonly int GMapGpaAlign = Group("gmap.gpa-align", AlignLabels);
    internal static readonly int GEditLevel = Group("gedit.level", "1", "2", "3", "4");
    internal static readonly int GEditSet = Group("gedit.set", GuestBitLabels);
    internal static readonly int GEditClear = Group("gedit.clear", GuestBitLabels);

    // ---- probes (the step)
    internal static readonly int AccessShape = Group("access.kind x address", Product(["read", "write", "fetch"], ["gpa", "gva", "gva-cpl0", "gva-cpl3"]));
    internal static readonly int EntryLevel = Group("entry.level", "1", "2", "3", "4", "5");
    internal static readonly int VmEntry = Group("vmentry", "probed");

    // ---- probes (what the access met; from the baseline's observation)
    internal static readonly int Outcome = Group("access.kind x outcome", Product(["read", "write", "fetch"], ["translated", "violation", "misconfig", "page-fault", "no-vmentry"]));
    internal static readonly int TranslatedSize = Group("translated.address x size", Product(["gpa", "gva"], ["4K", "2M", "1G"]));
    internal static readonly int GpaMemoryType = Group("gpa.ept-mt x ipat", Product(EptTypeLabels, ["0", "1"]));
    internal static readonly int GvaMemoryType = Group("gva.ept-mt x guest-pat-type", Product(EptTypeLabels, PatTypeLabels));
    internal static readonly int GvaIgnorePat = Group("gva.ipat ept-mt", EptTypeLabels);
    internal static readonly int PatIndex = Group("gva.pat-index", "0", "1", "2", "3", "4", "5", "6", "7");
    internal static readonly int GuestPermissions = Group("gva.cpl x us x wp x smep x nxe", Product(["cpl0", "cpl3"], ["s", "u"], ["wp0", "wp1"], ["smep0", "smep1"], ["nxe0", "nxe1"]));
    internal static readonly int GuestXd = Group("gva.xd-levels", "0", "1", "2+");
    internal static readonly int LeafPermissions = Group("ept-leaf.perm x mbec", Product(PermissionLabels(), ["mbec0", "mbec1"]));
    internal static readonly int UserExecuteOnly = Group("ept-leaf.u-only under mbec", "exec-only", "no-exec-only");
    internal static readonly int Reprobe = Group("tlb.reprobe after raw write + invept", Product(["single", "global"], ["gpa", "gva"], ["4K", "2M", "1G"]));

    /// <summary>How many classes there are.</summary>
    public static int Count => AllNames.Count;

    /// <summary>Every class's name, by index.</summary>
    public static IReadOnlyList<string> Names => AllNames;

    private static int Group(string group, params string[] labels)
    {
        int first = AllNames.Count;
        foreach (string label in labels)
        {
            AllNames.Add($"{group}={label}");
        }

        return first;
    }

    private static string[] Product(params string[][] parts)
    {
        IEnumerable<string> all = [string.Empty];
        foreach (string[] part in parts)
        {
            string[] captured = part;
            all = all.SelectMany(prefix => captured.Select(p => prefix.Length == 0 ? p : $"{prefix} {p}"));
        }

        return [.. all];
    }

    internal static string[] PermissionLabels() =>
        [.. Enumerable.Range(0, 16).Select(i => i == 0 ? "none" : $"{((i & 1) != 0 ? "r" : string.Empty)}{((i & 2) != 0 ? "w" : string.Empty)}{((i & 4) != 0 ? "x" : string.Empty)}{((i & 8) != 0 ? "u" : string.Empty)}")];
}

/// <summary>
/// Classifies one case's steps and probes into <see cref="ValueClasses"/>: <see cref="Begin"/>
/// classifies every step's fields, <see cref="Operation"/> and <see cref="Probe"/> add what each
/// access met. Each class counts once per case. One per worker; not thread-safe.
/// </summary>
public sealed class ValueClassifier
{
    private const ulong K4 = 1UL << 12;
    private const ulong M2 = 1UL << 21;
    private const ulong G1 = 1UL << 30;

    private readonly ulong[] seen = new ulong[(ValueClasses.Count + 63) / 64];
    private readonly List<int> hits = new(128);
    private readonly HashSet<ulong> probedBeforeRaw = new();
    private readonly HashSet<ulong> probedNow = new();
    private CpuCapabilities cpu = CpuCapabilities.Default;
    private GuestPaging guest = GuestPaging.Off;
    private bool mbec;
    private bool rawSinceInvept;
    private int inveptAfterRaw = -1;

    /// <summary>The classes the current case hit, each once, in the order first hit.</summary>
    public IReadOnlyList<int> Hits => hits;

    /// <summary>Starts a case and classifies the fields of all its steps.</summary>
    public void Begin(EptCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        Reset();
        foreach (Step s in c.Steps)
        {
            if (s is CpuStep cs)
            {
                cpu = cs.ToCapabilities();
            }

            ClassifyStep(s, cpu.MaxPhyAddr);
        }
    }

    /// <summary>Starts a case whose steps are not classified (only what its accesses meet is).</summary>
    public void Reset()
    {
        Array.Clear(seen);
        hits.Clear();
        probedBeforeRaw.Clear();
        probedNow.Clear();
        cpu = CpuCapabilities.Default;
        guest = GuestPaging.Off;
        mbec = false;
        rawSinceInvept = false;
        inveptAfterRaw = -1;
    }

    /// <summary>Classifies every step of a case into <paramref name="into"/> without running it (steps only, no observations).</summary>
    public static void ClassifySteps(EptCase c, ValueClassifier into) => into.Begin(c);

    private void Hit(int index)
    {
        ulong mask = 1UL << (index & 63);
        ref ulong word = ref seen[index >> 6];
        if ((word & mask) == 0)
        {
            word |= mask;
            hits.Add(index);
        }
    }

    private static int Tri(bool? b) => b is null ? 0 : b.Value ? 2 : 1;

    internal static int Align(ulong a) => (a & (K4 - 1)) != 0 ? 0 : (a & (M2 - 1)) != 0 ? 1 : (a & (G1 - 1)) != 0 ? 2 : 3;

    internal static int SizeClass(ulong size) => size switch
    {
        K4 => 0,
        M2 => 1,
        G1 => 2,
        _ when (size & (K4 - 1)) == 0 => 3,
        _ => 4,
    };

    internal static int LimitClass(ulong start, ulong size, int maxPhyAddr)
    {
        ulong limit = 1UL << maxPhyAddr;
        if (start >= limit)
        {
            return 3;
        }

        ulong room = limit - start;
        return size < room ? 0 : size == room ? 1 : 2;
    }

    private static int PermIndex(EptPermissions p) => (int)p & 15;

    private static int Type(MemoryType t) => (int)t & 7;

    private void ClassifyStep(Step s, int maxPhyAddr)
    {
        switch (s)
        {
            case CpuStep c:
                Hit(ValueClasses.CpuMaxPhyAddr + c.MaxPhyAddr switch { null => 0, 36 => 1, 39 => 2, 40 => 3, 46 => 4, 48 => 5, 52 => 6, _ => 7 });
                Hit(ValueClasses.CpuExecOnly + Tri(c.ExecuteOnly));
                Hit(ValueClasses.CpuPage2M + Tri(c.Page2M));
                Hit(ValueClasses.CpuPage1G + Tri(c.Page1G));
                Hit(ValueClasses.CpuAd + Tri(c.AccessedDirty));
                Hit(ValueClasses.CpuMbec + Tri(c.Mbec));
                Hit(ValueClasses.CpuWalk5 + Tri(c.Walk5));
                Hit(ValueClasses.CpuAdvExit + Tri(c.AdvancedExitInfo));
                Hit(ValueClasses.CpuEptpUc + Tri(c.EptpUc));
                Hit(ValueClasses.CpuEptpWb + Tri(c.EptpWb));
                break;
            case EptpStep { Raw: { } raw }:
                Hit(ValueClasses.EptpRawMt + (int)(raw & 7));
                Hit(ValueClasses.EptpRawWalk + (int)((raw >> 3) & 7));
                Hit(ValueClasses.EptpRawAd + (int)((raw >> 6) & 1));
                Hit(ValueClasses.EptpRawReserved + ((raw & 0xF80) != 0 ? 1 : 0));
                break;
            case EptpStep e:
                Hit(ValueClasses.EptpMt + e.MemoryType switch { null => 0, MemoryType.UC => 1, _ => 2 });
                Hit(ValueClasses.EptpWalk + e.WalkLength switch { null => 0, 4 => 1, _ => 2 });
                Hit(ValueClasses.EptpAd + Tri(e.AccessedDirty));
                break;
            case ControlsStep c:
                Hit(ValueClasses.ControlsMbec + Tri(c.Mbec));
                break;
            case GuestStep g:
                Hit(ValueClasses.GuestPaging + (g.Paging ? 1 : 0));
                if (g.Paging)
                {
                    Hit(ValueClasses.GuestWp + Tri(g.Wp));
                    Hit(ValueClasses.GuestNxe + Tri(g.Nxe));
                    Hit(ValueClasses.GuestSmep + Tri(g.Smep));
                    Hit(ValueClasses.GuestPat + (g.Pat is null ? 0 : g.Pat == GuestPaging.PowerOnPat ? 1 : 2));
                    Hit(ValueClasses.GuestCr3 + (g.Cr3 is { } cr3 && g.TablesStart is { } ts && cr3.Value + K4 == ts.Value ? 0 : 1));
                }

                break;
            case MapStep m:
            {
                int size = SizeClass(m.Size);
                Hit(ValueClasses.MapSize + size);
                int gpaAlign = Align(m.Gpa.Value), hpaAlign = Align(m.Hpa.Value);
                if (size < 3 && gpaAlign > 0 && hpaAlign > 0)
                {
                    Hit(ValueClasses.MapGpaAlign + (size * 9) + ((gpaAlign - 1) * 3) + hpaAlign - 1);
                }

                if (gpaAlign == 0)
                {
                    Hit(ValueClasses.MapUnaligned);
                }

                if (hpaAlign == 0)
                {
                    Hit(ValueClasses.MapUnaligned + 1);
                }

                Hit(ValueClasses.MapPerm + PermIndex(m.Permissions));
                Hit(ValueClasses.MapMt + (m.MemoryType is { } t ? 1 + Type(t) : 0));
                Hit(ValueClasses.MapIpat + Tri(m.IgnorePat));
                Hit(ValueClasses.MapLimit + LimitClass(m.Gpa.Value, m.Size, maxPhyAddr));
                break;
            }

            case UnmapStep u:
                Hit(ValueClasses.UnmapSize + SizeClass(u.Size));
                Hit(ValueClasses.UnmapAlign + Align(u.Gpa.Value));
                Hit(ValueClasses.UnmapLimit + LimitClass(u.Gpa.Value, u.Size, maxPhyAddr));
                break;
            case ProtectStep p:
                Hit(ValueClasses.ProtectSize + SizeClass(p.Size));
                Hit(ValueClasses.ProtectAlign + Align(p.Gpa.Value));
                Hit(ValueClasses.ProtectLimit + LimitClass(p.Gpa.Value, p.Size, maxPhyAddr));
                Hit(ValueClasses.ProtectPerm + PermIndex(p.Permissions));
                break;
            case RetypeStep r:
                Hit(ValueClasses.RetypeSize + SizeClass(r.Size));
                Hit(ValueClasses.RetypeAlign + Align(r.Gpa.Value));
                Hit(ValueClasses.RetypeLimit + LimitClass(r.Gpa.Value, r.Size, maxPhyAddr));
                Hit(ValueClasses.RetypeMt + Type(r.MemoryType));
                Hit(ValueClasses.RetypeIpat + Tri(r.IgnorePat));
                break;
            case SplitStep sp:
                Hit(ValueClasses.SplitAlign + Align(sp.Gpa.Value));
                break;
            case MergeStep mg:
                Hit(ValueClasses.MergeSize + mg.Size switch { M2 => 0, G1 => 1, _ => 2 });
                Hit(ValueClasses.MergeAlign + Align(mg.Gpa.Value));
                break;
            case MemoryStep mem:
                Hit(ValueClasses.MemoryMt + Type(mem.MemoryType));
                Hit(ValueClasses.MemoryStart + Align(mem.Start.Value));
                Hit(ValueClasses.MemoryEnd + Align(mem.End.Value));
                break;
            case IdentityMapStep im:
                Hit(ValueClasses.IdentityOffset + im.Offset switch { null => 0, 0 => 4, { } d => Math.Max(1, Align(d)) });
                Hit(ValueClasses.IdentityFrom + (im.OffsetFrom is { } from ? Math.Max(1, Align(from.Value)) : 0));
                break;
            case InveptStep inv:
                Hit(ValueClasses.Invept + (inv.Type == InveptType.Global ? 1 : 0));
                break;
            case EditStep e:
                Hit(ValueClasses.EditLevel + Math.Clamp((int)e.Level, 1, 5) - 1);
                EditBits(ValueClasses.EditSet, e.Set, maxPhyAddr);
                EditBits(ValueClasses.EditClear, e.Clear, maxPhyAddr);
                Hit(ValueClasses.EditLeafHpa + (e.LeafHpa is not { } lh ? 0 : (lh.Value & ((e.Level == EptLevel.Pdpte ? G1 : M2) - 1)) == 0 ? 1 : 2));
                break;
            case PokeStep p:
                Hit(ValueClasses.PokeValue + (p.Value == 0 ? 0 : (p.Value & 0xFFF) == 0x7 ? 1 : 2));
                break;
            case GMapStep gm:
                Hit(ValueClasses.GMapSize + SizeClass(gm.Size));
                Hit(ValueClasses.GMapPerm + ((int)gm.Permissions & 7));
                Hit(ValueClasses.GMapGva + GvaClass(gm.Gva.Value));
                Hit(ValueClasses.GMapGpaAlign + Align(gm.Gpa.Value));
                break;
            case GEditStep ge:
                Hit(ValueClasses.GEditLevel + Math.Clamp((int)ge.Level, 1, 4) - 1);
                GuestBits(ValueClasses.GEditSet, ge.Set, maxPhyAddr);
                GuestBits(ValueClasses.GEditClear, ge.Clear, maxPhyAddr);
                break;
            case AccessStep a:
                Hit(ValueClasses.AccessShape + ((int)a.Kind * 4) + (a.Gva is null ? 0 : a.Cpl switch { null => 1, 0 => 2, _ => 3 }));
                break;
            case EntryStep en:
                Hit(ValueClasses.EntryLevel + Math.Clamp((int)en.Level, 1, 5) - 1);
                break;
            case VmEntryStep:
                Hit(ValueClasses.VmEntry);
                break;
        }
    }

    private static int GvaClass(ulong gva)
    {
        ulong top = gva >> 47;
        return top == 0 ? 0 : top == 0x1FFFF ? 1 : 2;
    }

    private void EditBits(int group, ulong? mask, int maxPhyAddr)
    {
        if (mask is not { } m)
        {
            return;
        }

        for (int bit = 0; bit < 12; bit++)
        {
            if ((m & (1UL << bit)) != 0)
            {
                Hit(group + bit);
            }
        }

        ulong addressBits = ((1UL << 52) - 1) & ~(K4 - 1);
        ulong below = addressBits & ((1UL << maxPhyAddr) - 1);
        if ((m & below) != 0)
        {
            Hit(group + 12);
        }

        if ((m & addressBits & ~below) != 0)
        {
            Hit(group + 13);
        }

        if ((m & 0x7FF0_0000_0000_0000UL) != 0)
        {
            Hit(group + 14);
        }

        if ((m & (1UL << 63)) != 0)
        {
            Hit(group + 15);
        }
    }

    private void GuestBits(int group, ulong? mask, int maxPhyAddr)
    {
        if (mask is not { } m)
        {
            return;
        }

        for (int bit = 0; bit < 9; bit++)
        {
            if ((m & (1UL << bit)) != 0)
            {
                Hit(group + bit);
            }
        }

        if ((m & 0xE00) != 0)
        {
            Hit(group + 9);
        }

        if ((m & 0x1000) != 0)
        {
            Hit(group + 10);
        }

        ulong addressBits = ((1UL << maxPhyAddr) - 1) & ~0x1FFFUL;
        if ((m & addressBits) != 0)
        {
            Hit(group + 11);
        }

        if ((m & 0x7FFF_FFFF_FFFF_F000UL & ~addressBits & ~0x1000UL) != 0)
        {
            Hit(group + 12);
        }

        if ((m & (1UL << 63)) != 0)
        {
            Hit(group + 13);
        }
    }

    /// <summary>Tracks the state later probes are classified by (processor, guest paging, MBEC, raw writes and INVEPTs).</summary>
    public void Operation(Step step, ApiResult result)
    {
        switch (step)
        {
            case ControlsStep c when result == ApiResult.Ok:
                mbec = c.Mbec ?? false;
                break;
            case GuestStep g when result == ApiResult.Ok:
                guest = g.ToGuestPaging();
                break;
            case EditStep or PokeStep or GEditStep when result == ApiResult.Ok:
                if (!rawSinceInvept)
                {
                    probedBeforeRaw.Clear();
                    probedBeforeRaw.UnionWith(probedNow);
                }

                rawSinceInvept = true;
                inveptAfterRaw = -1;
                break;
            case InveptStep inv when rawSinceInvept:
                rawSinceInvept = false;
                inveptAfterRaw = inv.Type == InveptType.Global ? 1 : 0;
                break;
        }
    }

    /// <summary>Classifies what an access met, from the baseline's observation (its walk, outcome and memory type).</summary>
    public void Probe(Step step, Observation o)
    {
        if (step is not AccessStep a)
        {
            return;
        }

        bool linear = a.Gva is not null;
        ulong address = linear ? a.Gva!.Value.Value : a.Gpa!.Value.Value;
        int outcome = o.Kind switch
        {
            OutcomeKind.Translated => 0,
            OutcomeKind.EptViolation => 1,
            OutcomeKind.EptMisconfiguration => 2,
            OutcomeKind.GuestPageFault => 3,
            OutcomeKind.NoVmEntry => 4,
            _ => -1,
        };
        if (outcome >= 0)
        {
            Hit(ValueClasses.Outcome + ((int)a.Kind * 5) + outcome);
        }

        int size = o.PageSize switch { PageSize.Size4K => 0, PageSize.Size2M => 1, PageSize.Size1G => 2, _ => -1 };
        if (o.Kind == OutcomeKind.Translated && size >= 0)
        {
            Hit(ValueClasses.TranslatedSize + (linear ? 3 : 0) + size);
            ulong key = (address & ~(K4 - 1)) | (linear ? 1UL : 0);
            if (inveptAfterRaw >= 0 && probedBeforeRaw.Contains(key))
            {
                Hit(ValueClasses.Reprobe + (inveptAfterRaw * 6) + (linear ? 3 : 0) + size);
            }

            probedNow.Add(key);
        }

        IReadOnlyList<WalkEntry> walk = o.Walk;
        WalkEntry? eptLeaf = null;
        WalkEntry? guestLeaf = null;
        int xd = 0;
        bool user = true;
        int guestEntries = 0;
        for (int i = 0; i < walk.Count; i++)
        {
            WalkEntry w = walk[i];
            if (w.Structure == WalkStructure.Guest)
            {
                guestEntries++;
                if ((w.Value & 1) == 0)
                {
                    continue;
                }

                if ((w.Value >> 63) != 0)
                {
                    xd++;
                }

                user &= (w.Value & 4) != 0;
                if (w.Level == EptLevel.Pte || ((w.Level is EptLevel.Pde or EptLevel.Pdpte) && (w.Value & 0x80) != 0))
                {
                    guestLeaf = w;
                }
            }
            else if (w.Level == EptLevel.Pte || ((w.Level is EptLevel.Pde or EptLevel.Pdpte) && (w.Value & 0x80) != 0))
            {
                eptLeaf = w;
            }
        }

        if (eptLeaf is { } leaf && (outcome is 0 or 1 or 2 or 3))
        {
            EptPermissions perm = (EptPermissions)((leaf.Value & 7) | (((leaf.Value >> 10) & 1) << 3));
            Hit(ValueClasses.LeafPermissions + (PermIndex(perm) * 2) + (mbec ? 1 : 0));
            if (mbec && perm == EptPermissions.UserModeExecute)
            {
                Hit(ValueClasses.UserExecuteOnly + (cpu.ExecuteOnly ? 0 : 1));
            }
        }

        if (linear && guestLeaf is { } gl)
        {
            int cpl = a.Cpl == 3 ? 1 : 0;
            Hit(ValueClasses.GuestPermissions + (cpl * 16) + ((user ? 1 : 0) * 8) + ((guest.Wp ? 1 : 0) * 4) + ((guest.Smep ? 1 : 0) * 2) + (guest.Nxe ? 1 : 0));
            if (guest.Nxe && guestEntries > 0)
            {
                Hit(ValueClasses.GuestXd + Math.Min(xd, 2));
            }
        }

        if (o.Kind != OutcomeKind.Translated || eptLeaf is not { } ept)
        {
            return;
        }

        int eptType = EptTypeIndex((int)((ept.Value >> 3) & 7));
        bool ipat = ((ept.Value >> 6) & 1) != 0;
        if (eptType < 0)
        {
            return;
        }

        if (!linear)
        {
            Hit(ValueClasses.GpaMemoryType + (eptType * 2) + (ipat ? 1 : 0));
            return;
        }

        if (guestLeaf is not { } g)
        {
            return;
        }

        bool large = g.Level != EptLevel.Pte;
        int index = (int)(((g.Value >> 3) & 1) | (((g.Value >> 4) & 1) << 1) | ((large ? (g.Value >> 12) & 1 : (g.Value >> 7) & 1) << 2));
        Hit(ValueClasses.PatIndex + index);
        if (ipat)
        {
            Hit(ValueClasses.GvaIgnorePat + eptType);
            return;
        }

        int patType = PatTypeIndex((int)((guest.Pat >> (8 * index)) & 7));
        if (patType >= 0)
        {
            Hit(ValueClasses.GvaMemoryType + (eptType * 6) + patType);
        }
    }

    private static int EptTypeIndex(int t) => t switch { 0 => 0, 1 => 1, 4 => 2, 5 => 3, 6 => 4, _ => -1 };

    private static int PatTypeIndex(int t) => t switch { 0 => 0, 1 => 1, 4 => 2, 5 => 3, 6 => 4, 7 => 5, _ => -1 };
}
