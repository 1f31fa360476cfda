using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// Builds one step from its verb and fields, with the checks that need only that line: required
/// keys, value domains, and the rules between keys of one step. Returns null when the line is bad
/// (every problem is already reported).
/// </summary>
/// <remarks>
/// What is NOT checked here on purpose: alignment and range of operation addresses and sizes.
/// Those are API results (Unaligned, OutOfRange, Unsupported …) that the fuzzer must be able to
/// provoke; only probes (which have no result) restrict their GPA to below 2^52.
/// </remarks>
internal static class StepReader
{
    public static Step? Read(StepFields f)
    {
        Step? step = f.Verb switch
        {
            "cpu" => Cpu(f),
            "eptp" => Eptp(f),
            "controls" => new ControlsStep(f.Get<bool>("mbec", CaseSyntax.TryBool)),
            "guest" => Guest(f),
            "map" => Map(f),
            "unmap" => Sized(f, (gpa, size) => new UnmapStep(gpa, size)),
            "protect" => Protect(f),
            "retype" => Retype(f),
            "split" => f.Require<Gpa>("gpa", TryGpa) is { } gpa ? new SplitStep(gpa) : null,
            "merge" => Sized(f, (gpa, size) => new MergeStep(gpa, size)),
            "memory" => Memory(f),
            "identity-map" => IdentityMap(f),
            "invept" => f.Require<InveptType>("type", TryInvept) is { } type ? new InveptStep(type) : null,
            "edit" => Edit(f),
            "poke" => Poke(f),
            "gmap" => GMap(f),
            "gedit" => GEdit(f),
            "read" => Access(f, AccessKind.Read),
            "write" => Access(f, AccessKind.Write),
            "fetch" => Access(f, AccessKind.Fetch),
            "entry" => Entry(f),
            "vmentry" => new VmEntryStep(),
            // VerbTable and this switch name the same verbs; a verb in one only is a programming error.
            _ => throw new InvalidOperationException($"verb {f.Verb} has keys in VerbTable but no reader"),
        };
        return f.Failed ? null : step;
    }

    private static CpuStep Cpu(StepFields f)
    {
        int? maxPhyAddr = null;
        if (f.Get<ulong>("maxphyaddr", CaseSyntax.TryNumber) is { } n)
        {
            // Real processors report 36 to 52; below 32 no 64-bit processor with EPT exists.
            if (n is < 32 or > 52)
            {
                f.FailAt(f.ValueColumn("maxphyaddr"), $"maxphyaddr must be 32 to 52, found {n}");
            }
            else
            {
                maxPhyAddr = (int)n;
            }
        }

        return new CpuStep(
            maxPhyAddr,
            f.Get<bool>("exec-only", CaseSyntax.TryBool),
            f.Get<bool>("page2m", CaseSyntax.TryBool),
            f.Get<bool>("page1g", CaseSyntax.TryBool),
            f.Get<bool>("ad", CaseSyntax.TryBool),
            f.Get<bool>("mbec", CaseSyntax.TryBool),
            f.Get<bool>("walk5", CaseSyntax.TryBool),
            f.Get<bool>("adv-exit-info", CaseSyntax.TryBool),
            f.Get<bool>("eptp-uc", CaseSyntax.TryBool),
            f.Get<bool>("eptp-wb", CaseSyntax.TryBool));
    }

    private static EptpStep Eptp(StepFields f)
    {
        ulong? raw = f.Get<ulong>("raw", CaseSyntax.TryNumber);
        if (f.Has("raw"))
        {
            foreach (string named in (string[])["mt", "walk", "ad"])
            {
                if (f.Has(named))
                {
                    f.FailAt(f.KeyColumn(named), $"eptp raw= gives all 64 bits; it cannot be combined with {named}=");
                }
            }
        }

        int? walk = null;
        if (f.Get<ulong>("walk", CaseSyntax.TryNumber) is { } w)
        {
            if (w is 4 or 5)
            {
                walk = (int)w;
            }
            else
            {
                f.FailAt(f.ValueColumn("walk"), $"walk must be 4 or 5, found {w} (use raw= for other EPTP values)");
            }
        }

        return new EptpStep(raw, f.Get<MemoryType>("mt", CaseSyntax.TryMemoryType), walk, f.Get<bool>("ad", CaseSyntax.TryBool));
    }

    private static GuestStep? Guest(StepFields f)
    {
        if (!f.Has("paging"))
        {
            f.FailAt(f.VerbColumn, "guest needs paging= (off or 4level)");
            return null;
        }

        bool? paging = f.Get<bool>("paging", TryPagingMode);
        if (paging is not { } on)
        {
            return null;
        }

        if (!on)
        {
            foreach (string key in (string[])["cr3", "tables", "wp", "nxe", "smep", "pat"])
            {
                if (f.Has(key))
                {
                    f.FailAt(f.KeyColumn(key), $"{key}= belongs to guest paging=4level, not paging=off");
                }
            }

            return GuestStep.Off();
        }

        Gpa? cr3 = f.Require<Gpa>("cr3", TryGpa);
        if (cr3 is { } c && (c.Value % CaseSyntax.PageSize4K != 0 || c.Value >= CaseSyntax.GpaLimit))
        {
            f.FailAt(f.ValueColumn("cr3"), $"cr3 must be a page-aligned guest-physical address below 2^52, found {c}");
        }

        (Gpa Start, Gpa End)? tables = Tables(f);
        if (tables is { } t && cr3 is { } r && r.Value >= t.Start.Value && r.Value < t.End.Value)
        {
            f.FailAt(f.ValueColumn("tables"), $"tables [{t.Start}, {t.End}) must not contain cr3 {r}");
        }

        ulong? pat = f.Get<ulong>("pat", CaseSyntax.TryNumber);
        if (pat is { } p)
        {
            CheckPat(f, p);
        }

        return new GuestStep(
            true,
            cr3,
            tables?.Start,
            tables?.End,
            f.Get<bool>("wp", CaseSyntax.TryBool),
            f.Get<bool>("nxe", CaseSyntax.TryBool),
            f.Get<bool>("smep", CaseSyntax.TryBool),
            pat);
    }

    private static (Gpa Start, Gpa End)? Tables(StepFields f)
    {
        if (!f.TryRaw("tables", out int start, out string text))
        {
            f.FailAt(f.VerbColumn, "guest paging=4level needs tables=");
            return null;
        }

        int dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0)
        {
            f.Fail(start, $"tables: expected a range A-B, found {CaseSyntax.Quote(text)}");
            return null;
        }

        if (!CaseSyntax.TryNumber(text.AsSpan(0, dash), out ulong a, out string error))
        {
            f.Fail(start, $"tables: {error}");
            return null;
        }

        if (!CaseSyntax.TryNumber(text.AsSpan(dash + 1), out ulong b, out error))
        {
            f.Fail(start + dash + 1, $"tables: {error}");
            return null;
        }

        // The guest's tables live in guest-physical memory: page-aligned pages below 2^52.
        if (a % CaseSyntax.PageSize4K != 0 || b % CaseSyntax.PageSize4K != 0)
        {
            f.Fail(start, $"tables: both ends must be page-aligned (multiples of 0x1000), found {CaseSyntax.Quote(text)}");
            return null;
        }

        if (a >= b)
        {
            f.Fail(start, $"tables: the range A-B is half-open and needs A < B, found {CaseSyntax.Quote(text)}");
            return null;
        }

        if (b > CaseSyntax.GpaLimit)
        {
            f.Fail(start + dash + 1, "tables: the range must end at or below 2^52");
            return null;
        }

        return (new Gpa(a), new Gpa(b));
    }

    /// <summary>Each PAT byte holds a memory type; 2 and 3 are reserved, and bits 7:3 of each byte are reserved.</summary>
    private static void CheckPat(StepFields f, ulong pat)
    {
        for (int i = 0; i < 8; i++)
        {
            ulong type = (pat >> (8 * i)) & 0xff;
            if (type is 2 or 3 || type > 7)
            {
                f.FailAt(f.ValueColumn("pat"), $"pat: entry PA{i} (byte {i}) holds reserved type {type}; PAT types are 0, 1, 4, 5, 6, 7");
                return;
            }
        }
    }

    private static MapStep? Map(StepFields f)
    {
        Gpa? gpa = f.Require<Gpa>("gpa", TryGpa);
        Hpa? hpa = f.Require<Hpa>("hpa", TryHpa);
        ulong? size = f.Require<ulong>("size", CaseSyntax.TrySize);
        EptPermissions? perm = f.Require<EptPermissions>("perm", CaseSyntax.TryPermissions);
        MemoryType? mt = f.Get<MemoryType>("mt", CaseSyntax.TryMemoryType);
        bool? ipat = f.Get<bool>("ipat", CaseSyntax.TryBool);
        return gpa is { } g && hpa is { } h && size is { } s && perm is { } p ? new MapStep(g, h, s, p, mt, ipat) : null;
    }

    private static Step? Sized(StepFields f, Func<Gpa, ulong, Step> make)
    {
        Gpa? gpa = f.Require<Gpa>("gpa", TryGpa);
        ulong? size = f.Require<ulong>("size", CaseSyntax.TrySize);
        return gpa is { } g && size is { } s ? make(g, s) : null;
    }

    private static ProtectStep? Protect(StepFields f)
    {
        Gpa? gpa = f.Require<Gpa>("gpa", TryGpa);
        ulong? size = f.Require<ulong>("size", CaseSyntax.TrySize);
        EptPermissions? perm = f.Require<EptPermissions>("perm", CaseSyntax.TryPermissions);
        return gpa is { } g && size is { } s && perm is { } p ? new ProtectStep(g, s, p) : null;
    }

    private static RetypeStep? Retype(StepFields f)
    {
        Gpa? gpa = f.Require<Gpa>("gpa", TryGpa);
        ulong? size = f.Require<ulong>("size", CaseSyntax.TrySize);
        MemoryType? mt = f.Require<MemoryType>("mt", CaseSyntax.TryMemoryType);
        bool? ipat = f.Get<bool>("ipat", CaseSyntax.TryBool);
        return gpa is { } g && size is { } s && mt is { } t ? new RetypeStep(g, s, t, ipat) : null;
    }

    private static MemoryStep? Memory(StepFields f)
    {
        Gpa? start = f.Require<Gpa>("start", TryGpa);
        Gpa? end = f.Require<Gpa>("end", TryGpa);
        MemoryType? mt = f.Require<MemoryType>("mt", CaseSyntax.TryMemoryType);
        if (start is { } s && end is { } e && s.Value >= e.Value)
        {
            // An empty or inverted range declares nothing; it is a mistake in the case, not an API call.
            f.FailAt(f.ValueColumn("end"), $"memory: end {e} must be above start {s}");
        }

        return start is { } a && end is { } b && mt is { } t ? new MemoryStep(a, b, t) : null;
    }

    private static IdentityMapStep IdentityMap(StepFields f)
    {
        ulong? offset = f.Get<ulong>("offset", CaseSyntax.TryNumber);
        Gpa? from = f.Get<Gpa>("offset-from", TryGpa);
        if (f.Has("offset") != f.Has("offset-from"))
        {
            string missing = f.Has("offset") ? "offset-from" : "offset";
            string present = f.Has("offset") ? "offset" : "offset-from";
            f.FailAt(f.KeyColumn(present), $"identity-map: {present}= needs {missing}= (they go together)");
        }

        return new IdentityMapStep(offset, from);
    }

    private static EditStep? Edit(StepFields f)
    {
        Gpa? gpa = f.Require<Gpa>("gpa", TryGpa);
        EptLevel? level = f.Require<EptLevel>("level", CaseSyntax.TryLevel);
        ulong? set = f.Get<ulong>("set", CaseSyntax.TryNumber);
        ulong? clear = f.Get<ulong>("clear", CaseSyntax.TryNumber);
        Hpa? leaf = f.Get<Hpa>("leaf-hpa", TryHpa);
        return gpa is { } g && level is { } l ? new EditStep(g, l, set, clear, leaf) : null;
    }

    private static PokeStep? Poke(StepFields f)
    {
        Hpa? hpa = f.Require<Hpa>("hpa", TryHpa);
        ulong? value = f.Require<ulong>("value", CaseSyntax.TryNumber);
        return hpa is { } h && value is { } v ? new PokeStep(h, v) : null;
    }

    private static GMapStep? GMap(StepFields f)
    {
        Gva? gva = f.Require<Gva>("gva", TryGva);
        Gpa? gpa = f.Require<Gpa>("gpa", TryGpa);
        ulong? size = f.Require<ulong>("size", CaseSyntax.TrySize);
        GuestPagePermissions? perm = f.Require<GuestPagePermissions>("perm", CaseSyntax.TryGuestPermissions);
        return gva is { } v && gpa is { } g && size is { } s && perm is { } p ? new GMapStep(v, g, s, p) : null;
    }

    private static GEditStep? GEdit(StepFields f)
    {
        Gva? gva = f.Require<Gva>("gva", TryGva);
        EptLevel? level = f.Require<EptLevel>("level", CaseSyntax.TryLevel);
        ulong? set = f.Get<ulong>("set", CaseSyntax.TryNumber);
        ulong? clear = f.Get<ulong>("clear", CaseSyntax.TryNumber);
        if (level is > EptLevel.Pml4e)
        {
            f.FailAt(f.ValueColumn("level"), "gedit: guest paging has 4 levels (pte to pml4e)");
        }

        return gva is { } v && level is { } l ? new GEditStep(v, l, set, clear) : null;
    }

    private static AccessStep? Access(StepFields f, AccessKind kind)
    {
        bool hasGpa = f.Has("gpa");
        bool hasGva = f.Has("gva");
        if (hasGpa == hasGva)
        {
            f.FailAt(hasGpa ? f.KeyColumn("gva") : f.VerbColumn, $"{f.Verb} needs exactly one of gpa= and gva=");
            return null;
        }

        if (hasGpa && f.Has("cpl"))
        {
            f.FailAt(f.KeyColumn("cpl"), $"{f.Verb}: cpl= applies to gva= accesses only (a gpa= access runs with guest paging off)");
        }

        Gpa? gpa = f.Get<Gpa>("gpa", TryProbeGpa);
        Gva? gva = f.Get<Gva>("gva", TryGva);
        byte? cpl = f.Get<byte>("cpl", TryCpl);
        return hasGpa ? (gpa is { } g ? AccessStep.Physical(kind, g) : null) : (gva is { } v ? AccessStep.Linear(kind, v, cpl) : null);
    }

    private static EntryStep? Entry(StepFields f)
    {
        Gpa? gpa = f.Require<Gpa>("gpa", TryProbeGpa);
        EptLevel? level = f.Require<EptLevel>("level", CaseSyntax.TryLevel);
        return gpa is { } g && level is { } l ? new EntryStep(g, l) : null;
    }

    // ---- typed value readers ---------------------------------------------------------------

    private static bool TryGpa(ReadOnlySpan<char> s, out Gpa value, out string error)
    {
        bool ok = CaseSyntax.TryNumber(s, out ulong n, out error);
        value = new Gpa(n);
        return ok;
    }

    /// <summary>A probe has no API result to report a bad address with, so its GPA must be architectural.</summary>
    private static bool TryProbeGpa(ReadOnlySpan<char> s, out Gpa value, out string error)
    {
        if (!TryGpa(s, out value, out error))
        {
            return false;
        }

        if (value.Value >= CaseSyntax.GpaLimit)
        {
            error = $"a probed guest-physical address must be below 2^52, found {value}";
            return false;
        }

        return true;
    }

    private static bool TryHpa(ReadOnlySpan<char> s, out Hpa value, out string error)
    {
        bool ok = CaseSyntax.TryNumber(s, out ulong n, out error);
        value = new Hpa(n);
        return ok;
    }

    private static bool TryGva(ReadOnlySpan<char> s, out Gva value, out string error)
    {
        bool ok = CaseSyntax.TryNumber(s, out ulong n, out error);
        value = new Gva(n);
        return ok;
    }

    private static bool TryCpl(ReadOnlySpan<char> s, out byte value, out string error)
    {
        value = 0;
        if (!CaseSyntax.TryNumber(s, out ulong n, out error))
        {
            return false;
        }

        if (n is not (0 or 3))
        {
            error = $"cpl must be 0 or 3, found {n}";
            return false;
        }

        value = (byte)n;
        return true;
    }

    private static bool TryInvept(ReadOnlySpan<char> s, out InveptType value, out string error)
    {
        error = "";
        switch (s)
        {
            case "single": value = InveptType.SingleContext; return true;
            case "global": value = InveptType.Global; return true;
        }

        value = default;
        error = $"{CaseSyntax.Quote(s)} is not an invept type (single or global)";
        return false;
    }

    /// <summary>paging=off is false, paging=4level is true.</summary>
    private static bool TryPagingMode(ReadOnlySpan<char> s, out bool value, out string error)
    {
        error = "";
        switch (s)
        {
            case "off": value = false; return true;
            case "4level": value = true; return true;
        }

        value = false;
        error = $"{CaseSyntax.Quote(s)} is not a paging mode (off or 4level)";
        return false;
    }
}
