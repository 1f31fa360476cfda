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
    public static string Print(EptCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        var sb = new StringBuilder();
        sb.Append("eptcase ").Append(CaseSyntax.Decimal(c.Version)).Append('\n');
        foreach (string comment in c.HeaderComments.IsDefault ? [] : c.HeaderComments)
        {
            // A comment is one line: a '\n' inside it (only possible in a built case) becomes a space.
            string text = comment.Replace('\n', ' ').TrimEnd();
            sb.Append(text.Length == 0 ? "#" : "# " + text).Append('\n');
        }

        foreach (Step step in c.Steps.IsDefault ? [] : c.Steps)
        {
            sb.Append(PrintStep(step)).Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>One step in canonical form, without a line break.</summary>
    public static string PrintStep(Step step)
    {
        ArgumentNullException.ThrowIfNull(step);
        var line = new LineWriter(step.Verb);
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
                line.Add("raw", Hex(s.Raw));
                line.Add("mt", Type(s.MemoryType));
                line.Add("walk", s.WalkLength is { } w ? CaseSyntax.Decimal(w) : null);
                line.Add("ad", Bool(s.AccessedDirty));
                break;
            case ControlsStep s:
                line.Add("mbec", Bool(s.Mbec));
                break;
            case GuestStep s:
                line.Add("paging", s.Paging ? "4level" : "off");
                line.Add("cr3", Hex(s.Cr3?.Value));
                line.Add("tables", s.TablesStart is { } a && s.TablesEnd is { } b ? CaseSyntax.Hex(a.Value) + "-" + CaseSyntax.Hex(b.Value) : null);
                line.Add("wp", Bool(s.Wp));
                line.Add("nxe", Bool(s.Nxe));
                line.Add("smep", Bool(s.Smep));
                line.Add("pat", Hex(s.Pat));
                break;
            case MapStep s:
                line.Add("gpa", CaseSyntax.Hex(s.Gpa.Value));
                line.Add("hpa", CaseSyntax.Hex(s.Hpa.Value));
                line.Add("size", CaseSyntax.Size(s.Size));
                line.Add("perm", CaseSyntax.Permissions(s.Permissions));
                line.Add("mt", Type(s.MemoryType));
                line.Add("ipat", Bool(s.IgnorePat));
                break;
            case UnmapStep s:
                line.Add("gpa", CaseSyntax.Hex(s.Gpa.Value));
                line.Add("size", CaseSyntax.Size(s.Size));
                break;
            case ProtectStep s:
                line.Add("gpa", CaseSyntax.Hex(s.Gpa.Value));
                line.Add("size", CaseSyntax.Size(s.Size));
                line.Add("perm", CaseSyntax.Permissions(s.Permissions));
                break;
            case RetypeStep s:
                line.Add("gpa", CaseSyntax.Hex(s.Gpa.Value));
                line.Add("size", CaseSyntax.Size(s.Size));
                line.Add("mt", CaseSyntax.MemoryTypeName(s.MemoryType));
                line.Add("ipat", Bool(s.IgnorePat));
                break;
            case SplitStep s:
                line.Add("gpa", CaseSyntax.Hex(s.Gpa.Value));
                break;
            case MergeStep s:
                line.Add("gpa", CaseSyntax.Hex(s.Gpa.Value));
                line.Add("size", CaseSyntax.Size(s.Size));
                break;
            case MemoryStep s:
                line.Add("start", CaseSyntax.Hex(s.Start.Value));
                line.Add("end", CaseSyntax.Hex(s.End.Value));
                line.Add("mt", CaseSyntax.MemoryTypeName(s.MemoryType));
                break;
            case IdentityMapStep s:
                line.Add("offset", Hex(s.Offset));
                line.Add("offset-from", Hex(s.OffsetFrom?.Value));
                break;
            case InveptStep s:
                line.Add("type", CaseSyntax.Invept(s.Type));
                break;
            case EditStep s:
                line.Add("gpa", CaseSyntax.Hex(s.Gpa.Value));
                line.Add("level", CaseSyntax.Level(s.Level));
                line.Add("set", Hex(s.Set));
                line.Add("clear", Hex(s.Clear));
                line.Add("leaf-hpa", Hex(s.LeafHpa?.Value));
                break;
            case PokeStep s:
                line.Add("hpa", CaseSyntax.Hex(s.Hpa.Value));
                line.Add("value", CaseSyntax.Hex(s.Value));
                break;
            case GMapStep s:
                line.Add("gva", CaseSyntax.Hex(s.Gva.Value));
                line.Add("gpa", CaseSyntax.Hex(s.Gpa.Value));
                line.Add("size", CaseSyntax.Size(s.Size));
                line.Add("perm", CaseSyntax.GuestPermissions(s.Permissions));
                break;
            case GEditStep s:
                line.Add("gva", CaseSyntax.Hex(s.Gva.Value));
                line.Add("level", CaseSyntax.Level(s.Level));
                line.Add("set", Hex(s.Set));
                line.Add("clear", Hex(s.Clear));
                break;
            case AccessStep s:
                line.Add("gpa", Hex(s.Gpa?.Value));
                line.Add("gva", Hex(s.Gva?.Value));
                line.Add("cpl", s.Cpl is { } cpl ? CaseSyntax.Decimal(cpl) : null);
                break;
            case EntryStep s:
                line.Add("gpa", CaseSyntax.Hex(s.Gpa.Value));
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

        return line.ToString();
    }

    /// <summary>An expectation as it is written after <c>=&gt; </c> (for reports and reducer headers).</summary>
    public static string PrintExpectation(Expectation expectation)
    {
        ArgumentNullException.ThrowIfNull(expectation);
        var line = new LineWriter(string.Empty);
        PrintExpectation(line, expectation);
        return line.ToString().TrimStart(' ');
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
                line.Add("hpa", CaseSyntax.Hex(t.Hpa.Value));
                line.Add("mt", Type(t.MemoryType));
                line.Add("size", t.Size is { } size ? CaseSyntax.Size(size) : null);
                break;
            case ViolationExpectation v:
                line.Word("violation");
                line.Add("qual", CaseSyntax.Hex(v.Qualification));
                line.Add("gpa", Hex(v.Gpa?.Value));
                line.Add("gla", Hex(v.GuestLinearAddress?.Value));
                break;
            case MisconfigExpectation m:
                line.Word("misconfig");
                line.Add("gpa", Hex(m.Gpa?.Value));
                break;
            case PageFaultExpectation p:
                line.Word("page-fault");
                line.Add("code", CaseSyntax.Hex(p.ErrorCode));
                break;
            case EntryExpectation en:
                line.Word("entry");
                line.Add("a", CaseSyntax.Bool(en.Accessed));
                line.Add("d", CaseSyntax.Bool(en.Dirty));
                line.Add("value", Hex(en.Value));
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

    private static string? Hex(ulong? value) => value is { } v ? CaseSyntax.Hex(v) : null;

    private static string? Type(MemoryType? value) => value is { } v ? CaseSyntax.MemoryTypeName(v) : null;

    /// <summary>Tokens of one line joined by single spaces; null values are keys that were not written.</summary>
    private sealed class LineWriter
    {
        private readonly StringBuilder _sb;

        public LineWriter(string verb)
        {
            _sb = new StringBuilder(verb, 80);
        }

        public void Add(string key, string? value)
        {
            if (value is not null)
            {
                _sb.Append(' ').Append(key).Append('=').Append(value);
            }
        }

        public void Word(string word) => _sb.Append(' ').Append(word);

        public void Arrow() => _sb.Append(" =>");

        public override string ToString() => _sb.ToString();
    }
}
