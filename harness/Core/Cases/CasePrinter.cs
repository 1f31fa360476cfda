using System.Text;
using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// Writes a case in canonical form (README.md "Canonical form"): <c>eptcase 1</c>, the header
/// comments as <c># text</c>, then one step per line with its keys in a fixed order, one space
/// between tokens, and <c> =&gt; expectation</c> when present. Keys that were not written (null)
/// are not printed, and keys that were are printed even when they equal the default, so
/// parse(print(c)) == c.
/// </summary>
public static class CasePrinter
{
    public static string Print(EptCase c) => Append(new StringBuilder(), c).ToString();

    /// <summary>Appends the text <see cref="Print"/> returns to <paramref name="sb"/> (a fuzzing worker reuses one builder for every case).</summary>
    public static StringBuilder Append(StringBuilder sb, EptCase c)
    {
        ArgumentNullException.ThrowIfNull(sb);
        ArgumentNullException.ThrowIfNull(c);
        sb.Append("eptcase ").Append(CaseSyntax.Decimal(c.Version)).Append('\n');
        foreach (string comment in c.HeaderComments.IsDefault ? [] : c.HeaderComments)
        {
            // A comment is one line: a '\n' inside it (only possible in a built case) becomes a space.
            string text = comment.Replace('\n', ' ').TrimEnd();
            sb.Append(text.Length == 0 ? "#" : "# " + text).Append('\n');
        }

        foreach (Step step in c.Steps.IsDefault ? [] : c.Steps)
        {
            AppendStep(sb, step);
            sb.Append('\n');
        }

        return sb;
    }

    /// <summary>One step in canonical form, without a line break.</summary>
    public static string PrintStep(Step step) => AppendStep(new StringBuilder(80), step).ToString();

    // Every token is appended to the case's one builder: a campaign prints each case it runs
    // (its crash-safe slot), so the printer must not make a string per token.
    private static StringBuilder AppendStep(StringBuilder sb, Step step)
    {
        ArgumentNullException.ThrowIfNull(step);
        var line = new LineWriter(sb, step.Verb);
        switch (step)
        {
            case CpuStep s:
                line.Add("maxphyaddr", s.MaxPhyAddr is { } m ? CaseSyntax.Decimal(m) : null);
                line.Add("exec-only", Bool(s.ExecuteOnly));
                line.Add("page2m", Bool(s.Page2M));
                line.Add("page1g", Bool(s.Page1G));
                line.Add("ad", Bool(s.AccessedDirty));
                line.Add("mbec", Bool(s.Mbec));
                line.Add("walk5", Bool(s.Walk5));
                line.Add("adv-exit-info", Bool(s.AdvancedExitInfo));
                line.Add("eptp-uc", Bool(s.EptpUc));
                line.Add("eptp-wb", Bool(s.EptpWb));
                break;
            case EptpStep s:
                line.AddHex("raw", s.Raw);
                line.Add("mt", Type(s.MemoryType));
                line.Add("walk", s.WalkLength is { } w ? CaseSyntax.Decimal(w) : null);
                line.Add("ad", Bool(s.AccessedDirty));
                break;
            case ControlsStep s:
                line.Add("mbec", Bool(s.Mbec));
                break;
            case GuestStep s:
                line.Add("paging", s.Paging ? "4level" : "off");
                line.AddHex("cr3", s.Cr3?.Value);
                line.Add("tables", s.TablesStart is { } a && s.TablesEnd is { } b ? CaseSyntax.Hex(a.Value) + "-" + CaseSyntax.Hex(b.Value) : null);
                line.Add("wp", Bool(s.Wp));
                line.Add("nxe", Bool(s.Nxe));
                line.Add("smep", Bool(s.Smep));
                line.AddHex("pat", s.Pat);
                break;
            case MapStep s:
                line.AddHex("gpa", s.Gpa.Value);
                line.AddHex("hpa", s.Hpa.Value);
                line.Add("size", CaseSyntax.Size(s.Size));
                line.Add("perm", CaseSyntax.Permissions(s.Permissions));
                line.Add("mt", Type(s.MemoryType));
                line.Add("ipat", Bool(s.IgnorePat));
                break;
            case UnmapStep s:
                line.AddHex("gpa", s.Gpa.Value);
                line.Add("size", CaseSyntax.Size(s.Size));
                break;
            case ProtectStep s:
                line.AddHex("gpa", s.Gpa.Value);
                line.Add("size", CaseSyntax.Size(s.Size));
                line.Add("perm", CaseSyntax.Permissions(s.Permissions));
                break;
            case RetypeStep s:
                line.AddHex("gpa", s.Gpa.Value);
                line.Add("size", CaseSyntax.Size(s.Size));
                line.Add("mt", CaseSyntax.MemoryTypeName(s.MemoryType));
                line.Add("ipat", Bool(s.IgnorePat));
                break;
            case SplitStep s:
                line.AddHex("gpa", s.Gpa.Value);
                break;
            case MergeStep s:
                line.AddHex("gpa", s.Gpa.Value);
                line.Add("size", CaseSyntax.Size(s.Size));
                break;
            case MemoryStep s:
                line.AddHex("start", s.Start.Value);
                line.AddHex("end", s.End.Value);
                line.Add("mt", CaseSyntax.MemoryTypeName(s.MemoryType));
                break;
            case IdentityMapStep s:
                line.AddHex("offset", s.Offset);
                line.AddHex("offset-from", s.OffsetFrom?.Value);
                break;
            case InveptStep s:
                line.Add("type", CaseSyntax.Invept(s.Type));
                break;
            case EditStep s:
                line.AddHex("gpa", s.Gpa.Value);
                line.Add("level", CaseSyntax.Level(s.Level));
                line.AddHex("set", s.Set);
                line.AddHex("clear", s.Clear);
                line.AddHex("leaf-hpa", s.LeafHpa?.Value);
                break;
            case PokeStep s:
                line.AddHex("hpa", s.Hpa.Value);
                line.AddHex("value", s.Value);
                break;
            case GMapStep s:
                line.AddHex("gva", s.Gva.Value);
                line.AddHex("gpa", s.Gpa.Value);
                line.Add("size", CaseSyntax.Size(s.Size));
                line.Add("perm", CaseSyntax.GuestPermissions(s.Permissions));
                break;
            case GEditStep s:
                line.AddHex("gva", s.Gva.Value);
                line.Add("level", CaseSyntax.Level(s.Level));
                line.AddHex("set", s.Set);
                line.AddHex("clear", s.Clear);
                break;
            case AccessStep s:
                line.AddHex("gpa", s.Gpa?.Value);
                line.AddHex("gva", s.Gva?.Value);
                line.Add("cpl", s.Cpl is { } cpl ? CaseSyntax.Decimal(cpl) : null);
                break;
            case EntryStep s:
                line.AddHex("gpa", s.Gpa.Value);
                line.Add("level", CaseSyntax.Level(s.Level));
                break;
            case VmEntryStep:
                break;
            default:
                // Only a new Step type without a printer branch gets here: a programming error.
                throw new ArgumentException($"no canonical form for {step.GetType().Name}", nameof(step));
        }

        if (step.Expectation is { } e)
        {
            line.Arrow();
            PrintExpectation(line, e);
        }

        return sb;
    }

    /// <summary>An expectation as it is written after <c>=&gt; </c> (for reports and reducer headers).</summary>
    public static string PrintExpectation(Expectation expectation)
    {
        ArgumentNullException.ThrowIfNull(expectation);
        var sb = new StringBuilder(40);
        PrintExpectation(new LineWriter(sb, string.Empty), expectation);
        return sb.ToString().TrimStart(' ');
    }

    private static void PrintExpectation(LineWriter line, Expectation e)
    {
        switch (e)
        {
            case ResultExpectation r:
                line.Word(CaseSyntax.Result(r.Result));
                break;
            case TranslatedExpectation t:
                line.Word("ok");
                line.AddHex("hpa", t.Hpa.Value);
                line.Add("mt", Type(t.MemoryType));
                line.Add("size", t.Size is { } size ? CaseSyntax.Size(size) : null);
                break;
            case ViolationExpectation v:
                line.Word("violation");
                line.AddHex("qual", v.Qualification);
                line.AddHex("gpa", v.Gpa?.Value);
                line.AddHex("gla", v.GuestLinearAddress?.Value);
                break;
            case MisconfigExpectation m:
                line.Word("misconfig");
                line.AddHex("gpa", m.Gpa?.Value);
                break;
            case PageFaultExpectation p:
                line.Word("page-fault");
                line.AddHex("code", p.ErrorCode);
                break;
            case EntryExpectation en:
                line.Word("entry");
                line.Add("a", CaseSyntax.Bool(en.Accessed));
                line.Add("d", CaseSyntax.Bool(en.Dirty));
                line.AddHex("value", en.Value);
                break;
            case VmEntryExpectation v:
                line.Word("vmentry");
                line.Word(v.Ok ? "ok" : "fail");
                break;
            default:
                throw new ArgumentException($"no canonical form for {e.GetType().Name}", nameof(e));
        }
    }

    private static string? Bool(bool? value) => value is { } v ? CaseSyntax.Bool(v) : null;

    private static string? Type(MemoryType? value) => value is { } v ? CaseSyntax.MemoryTypeName(v) : null;

    /// <summary>Tokens of one line joined by single spaces; null values are keys that were not written.</summary>
    private readonly struct LineWriter
    {
        private readonly StringBuilder sb;

        public LineWriter(StringBuilder sb, string verb)
        {
            this.sb = sb.Append(verb);
        }

        public void Add(string key, string? value)
        {
            if (value is not null)
            {
                sb.Append(' ').Append(key).Append('=').Append(value);
            }
        }

        public void AddHex(string key, ulong? value)
        {
            if (value is { } v)
            {
                CaseSyntax.AppendHex(sb.Append(' ').Append(key).Append('='), v);
            }
        }

        public void Word(string word) => sb.Append(' ').Append(word);

        public void Arrow() => sb.Append(" =>");
    }
}
