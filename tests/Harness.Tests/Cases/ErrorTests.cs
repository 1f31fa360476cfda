using System.Text;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Tests.Cases;

/// <summary>
/// One row per error class: a step line placed on line 3 (after <c>eptcase 1</c> and <c>eptp</c>)
/// with a '|' marking the exact column the error must point at, and a part of the message.
/// </summary>
public sealed class ErrorTests
{
    private const string Prefix = "eptcase 1\neptp\n";

    public static TheoryData<string, string> StepLineErrors => new()
    {
        // verbs and keys
        { "|frobnicate gpa=0", "unknown verb `frobnicate`" },
        { "|eptcase 1", "eptcase appears twice" },
        { "map gpa=0 hpa=0 size=4K perm=r |color=red", "unknown key `color` for map" },
        { "vmentry |now=1", "unknown key `now` for vmentry (it takes no keys)" },
        { "split gpa=0x1000 |gpa=0x2000", "key gpa appears twice (first at column 7)" },
        { "|map gpa=0 hpa=0 size=4K", "map needs perm=" },
        { "vmentry |0x1000", "expected key=value, found `0x1000`" },
        { "vmentry |=0x1000", "missing key before '='" },
        // numbers
        { "split gpa=|0xZZ", "`0xZZ` is not a number" },
        { "split gpa=|0x", "is not a number" },
        { "split gpa=|", "gpa: missing value" },
        { "split gpa=|0x1_0000_0000_0000_0000", "does not fit in 64 bits" },
        { "poke hpa=0 value=|18446744073709551616", "does not fit in 64 bits" },
        { "split gpa=|-1", "negative numbers are not allowed" },
        { "split gpa=|0x_1000", "is not a number" },
        { "split gpa=|0x1000_", "is not a number" },
        { "split gpa=|1__000", "is not a number" },
        { "split gpa=|0X1000", "is not a number" },
        // sizes, permissions, memory types, levels, booleans
        { "unmap gpa=0 size=|3K", "`3K` is not a size" },
        { "protect gpa=0 size=4K perm=|rr", "permission letter 'r' appears twice" },
        { "protect gpa=0 size=4K perm=|rq", "is not a permission set" },
        { "protect gpa=0 size=4K perm=|", "empty permissions" },
        { "protect gpa=0 size=4K perm=|RW", "is not a permission set" },
        { "retype gpa=0 size=4K mt=|XX", "is not a memory type" },
        { "retype gpa=0 size=4K mt=|8", "is not a memory type" },
        { "retype gpa=0 size=4K mt=|wb", "is not a memory type" },
        { "entry gpa=0 level=|6", "is not a level" },
        { "entry gpa=0 level=|pt", "is not a level" },
        { "controls mbec=|2", "expected 0 or 1" },
        { "invept type=|all", "is not an invept type" },
        { "gmap gva=0 gpa=0 size=4K perm=|r", "is not a guest permission set" },
        { "gmap gva=0 gpa=0 size=4K perm=|ww", "permission letter 'w' appears twice" },
        { "gedit gva=0 level=|5", "guest paging has 4 levels" },
        // rules between keys of one step
        { "read gva=0 cpl=|2", "cpl must be 0 or 3" },
        { "read gpa=|0x10_0000_0000_0000", "below 2^52" },
        { "entry gpa=|0xffff_ffff_ffff_f000 level=1", "below 2^52" },
        { "read gpa=0 |gva=0", "needs exactly one of gpa= and gva=" },
        { "|read cpl=0", "needs exactly one of gpa= and gva=" },
        { "write gpa=0 |cpl=3", "cpl= applies to gva= accesses only" },
        { "guest paging=4level cr3=0x11000 tables=|0x10000-0x20000", "must not contain cr3 0x11000" },
        { "guest paging=4level cr3=0x1000 tables=|0x20000-0x20000", "needs A < B" },
        { "guest paging=4level cr3=0x1000 tables=|0x20010-0x30000", "page-aligned" },
        { "guest paging=4level cr3=0x1000 tables=|0x20000", "expected a range A-B" },
        { "guest paging=4level cr3=0x1000 tables=0x20000-|0xZ", "is not a number" },
        { "guest paging=4level cr3=|0x1008 tables=0x2000-0x3000", "cr3 must be a page-aligned" },
        { "|guest paging=4level tables=0x2000-0x3000", "guest needs cr3=" },
        { "|guest paging=4level cr3=0x1000", "needs tables=" },
        { "guest paging=4level cr3=0x1000 tables=0x2000-0x3000 pat=|0x0007040600070402", "PA0 (byte 0) holds reserved type 2" },
        { "guest paging=4level cr3=0x1000 tables=0x2000-0x3000 pat=|0x0307040600070406", "PA7 (byte 7) holds reserved type 3" },
        { "guest paging=4level cr3=0x1000 tables=0x2000-0x3000 pat=|0x0007040600070446", "reserved type 70" },
        { "guest paging=off |cr3=0x1000", "cr3= belongs to guest paging=4level" },
        { "guest paging=|on", "is not a paging mode" },
        { "|guest", "guest needs paging=" },
        { "eptp raw=0x1e |mt=WB", "cannot be combined with mt=" },
        { "eptp walk=|3", "walk must be 4 or 5" },
        { "cpu maxphyaddr=|60", "maxphyaddr must be 32 to 52" },
        { "memory start=0x2000 end=|0x1000 mt=WB", "must be above start" },
        { "identity-map |offset=0x1000", "offset= needs offset-from=" },
        // expectations
        { "map gpa=0 hpa=0 size=4K perm=r => |violation qual=0x1", "does not fit a map step" },
        { "read gpa=0 => |ok", "does not fit a read step: an access expects ok hpa=" },
        { "read gpa=0 => |Unaligned", "does not fit a read step" },
        { "vmentry => |ok", "does not fit a vmentry step: it expects vmentry ok or vmentry fail" },
        { "entry gpa=0 level=1 => |vmentry ok", "does not fit a entry step" },
        { "split gpa=0 => |entry a=1 d=1", "does not fit a split step" },
        { "split gpa=0 => |maybe", "unknown expectation `maybe`" },
        { "split gpa=0 => |unaligned", "unknown expectation `unaligned`" },
        { "split gpa=0 |=>", "=> needs an expectation after it" },
        { "split gpa=0 => ok |=> ok", "at most one =>" },
        { "split gpa=0 => Unaligned |now", "takes nothing after it" },
        { "vmentry => vmentry |maybe", "expects ok or fail" },
        { "vmentry => |vmentry", "needs ok or fail" },
        { "read gpa=0 => |ok mt=WB", "=> ok needs hpa=" },
        { "read gpa=0 => |violation gpa=0", "=> violation needs qual=" },
        { "read gpa=0 => violation qual=1 |qual=2", "appears twice" },
        { "read gpa=0 => page-fault code=|0x1_0000_0000", "32 bits" },
        { "read gpa=0 => misconfig |gla=0", "unknown key `gla` for => misconfig" },
        { "entry gpa=0 level=1 => |entry a=1", "=> entry needs d=" },
        { "entry gpa=0 level=1 => entry a=|2 d=0", "expected 0 or 1" },
        // rules between steps
        { "|cpu", "cpu must be the first step" },
        { "|gmap gva=0 gpa=0 size=4K perm=w", "gmap needs guest paging" },
        { "|gedit gva=0 level=1", "gedit needs guest paging" },
    };

    [Theory]
    [MemberData(nameof(StepLineErrors))]
    public void StepLine_IsRejected_AtTheOffendingToken(string markedLine, string message)
    {
        int column = markedLine.IndexOf('|', StringComparison.Ordinal) + 1;
        Assert.True(column > 0, "test data: mark the expected column with '|'");
        string stepLine = markedLine.Remove(column - 1, 1);

        ParseResult result = CaseParser.Parse(Prefix + stepLine + "\n", "bad.ept");

        Assert.False(result.Succeeded);
        CaseError error = Assert.Single(result.Errors);
        Assert.Equal(("bad.ept", 3, column), (error.File, error.Line, error.Column));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.StartsWith($"bad.ept:3:{column}: ", error.ToString(), StringComparison.Ordinal);
    }

    public static TheoryData<string, int, int, string> FileErrors => new()
    {
        { "", 1, 1, "missing the version line eptcase 1" },
        { "# only a comment\n\n", 2, 1, "missing the version line" },
        { "eptcase 2\nthis is version 2 syntax\n", 1, 9, "unsupported version 2 (this harness reads eptcase 1)" },
        { "eptcase\n", 1, 8, "eptcase needs a version number" },
        { "eptcase one\n", 1, 9, "version: `one` is not a number" },
        { "eptcase 1 extra\neptp\n", 1, 11, "unexpected `extra` after eptcase 1" },
        { "# header\n  map gpa=0 hpa=0 size=4K perm=r\n", 2, 3, "expected the version line eptcase 1 first, found `map`" },
        { "eptcase 1\ncpu\ncpu\neptp\n", 3, 1, "at most one cpu step (the first is on line 2)" },
        { "eptcase 1\nmap gpa=0 hpa=0 size=4K perm=r\neptp\nvmentry\n", 2, 1, "map comes before any eptp step" },
        { "eptcase 1\ncpu\nvmentry\n", 3, 1, "vmentry comes before any eptp step" },
        { "eptcase 1\neptp\nguest paging=4level cr3=0 tables=0x1000-0x2000\nguest paging=off\ngmap gva=0 gpa=0 size=4K perm=w\n", 5, 1, "gmap needs guest paging" },
        { "eptcase 1\neptp\n\tsplit\tgpa=0x1000\tgpa=1\n", 3, 19, "key gpa appears twice" },
        { "eptcase 1\r\neptp\r\nsplit gpa=zz\r\n", 3, 11, "`zz` is not a number" },
        { "eptcase 1\neptp\nsplit gpa=1 # trailing comment gpa=2 wrong=3\nsplit gpa=zz # x\n", 4, 11, "is not a number" },
    };

    [Theory]
    [MemberData(nameof(FileErrors))]
    public void File_IsRejected_AtTheRightPlace(string text, int line, int column, string message)
    {
        ParseResult result = CaseParser.Parse(text, "f.ept");

        Assert.False(result.Succeeded);
        CaseError error = Assert.Single(result.Errors);
        Assert.Equal((line, column), (error.Line, error.Column));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AllErrorsOfAFile_AreReported_InOrder()
    {
        const string text = "eptcase 1\neptp\nsplit gpa=zz\nfrob\nmap gpa=0 hpa=0 size=4K perm=r\nunmap gpa=0 size=3K bogus=1\n";

        ParseResult result = CaseParser.Parse(text, "many.ept");

        Assert.Equal(
            ["many.ept:3:11: gpa: `zz` is not a number (decimal, or hex after 0x; '_' may separate digits)",
             "many.ept:4:1: unknown verb `frob`",
             "many.ept:6:21: unknown key `bogus` for unmap (expected gpa, size)",
             "many.ept:6:18: size: `3K` is not a size (4K, 2M, 1G, or a number of bytes)"],
            result.Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void Errors_AreCapped()
    {
        var sb = new StringBuilder("eptcase 1\neptp\n");
        for (int i = 0; i < 500; i++)
        {
            sb.Append("nonsense\n");
        }

        ParseResult result = CaseParser.Parse(sb.ToString(), "cap.ept");

        Assert.Equal(CaseLimits.MaxErrors, result.Errors.Count);
        Assert.Equal(CaseLimits.MaxErrors + 2, result.Errors[^1].Line);
    }

    [Fact]
    public void FileTooLarge_IsRefusedAtOnce()
    {
        string text = "eptcase 1\n" + new string('#', CaseLimits.MaxFileLength);

        ParseResult result = CaseParser.Parse(text, "big.ept");

        CaseError error = Assert.Single(result.Errors);
        Assert.Equal((1, 1), (error.Line, error.Column));
        Assert.Contains("file too large", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LongLine_IsRefused()
    {
        string text = "eptcase 1\neptp\nsplit gpa=" + new string('1', CaseLimits.MaxLineLength) + "\n";

        CaseError error = Assert.Single(CaseParser.Parse(text, "long.ept").Errors);

        Assert.Equal((3, CaseLimits.MaxLineLength + 1), (error.Line, error.Column));
        Assert.Contains("line longer than", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LineOfExactlyTheLimit_IsAccepted()
    {
        string text = "eptcase 1\neptp\n#" + new string('x', CaseLimits.MaxLineLength - 1) + "\r\nvmentry\n";

        Assert.True(CaseParser.Parse(text, "limit.ept").Succeeded);
    }

    [Fact]
    public void TooManySteps_IsRefused()
    {
        var sb = new StringBuilder("eptcase 1\neptp\n");
        for (int i = 0; i < CaseLimits.MaxSteps; i++)
        {
            sb.Append("vmentry\n");
        }

        ParseResult result = CaseParser.Parse(sb.ToString(), "steps.ept");

        CaseError error = Assert.Single(result.Errors);
        Assert.Equal((CaseLimits.MaxSteps + 2, 1), (error.Line, error.Column));
        Assert.Contains("too many steps", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AsManyStepsAsTheLimit_Parse()
    {
        var sb = new StringBuilder("eptcase 1\neptp\n");
        for (int i = 1; i < CaseLimits.MaxSteps; i++)
        {
            sb.Append("vmentry\n");
        }

        Assert.True(CaseParser.Parse(sb.ToString(), "steps.ept").Succeeded);
    }

    [Fact]
    public void InvalidUtf8_IsLocated()
    {
        byte[] bytes = [.. "eptcase 1\neptp\nsplit gpa=0x1"u8, 0xff, .. "000\n"u8];

        CaseError error = Assert.Single(CaseParser.Parse(bytes, "u.ept").Errors);

        Assert.Equal((3, 14), (error.Line, error.Column));
        Assert.Contains("invalid UTF-8 (byte 0xff)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Utf8WithByteOrderMark_Parses()
    {
        byte[] bytes = [0xef, 0xbb, 0xbf, .. "eptcase 1\n# é\neptp\n"u8];

        ParseResult result = CaseParser.Parse(bytes, "bom.ept");

        Assert.True(result.Succeeded, result.ErrorText());
        Assert.Equal(["é"], result.Case.HeaderComments.ToArray());
    }

    [Fact]
    public void AbsurdIdentityMap_IsRefused_WithAClearMessage()
    {
        // 2^40 bytes with 4K pages only would be 2^28 leaves.
        const string text = "eptcase 1\ncpu page2m=0 page1g=0\neptp\nmemory start=0 end=0x100_0000_0000 mt=WB\nidentity-map\n";

        CaseError error = Assert.Single(CaseParser.Parse(text, "huge.ept").Errors);

        Assert.Equal((5, 1), (error.Line, error.Column));
        Assert.Contains("identity-map would need 268435456 leaf entries", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void IdentityMapWithMisalignedOffset_CountsSmallPages()
    {
        // An offset that is not 2M-aligned forces 4K pages: 2^30 / 2^12 = 2^18 leaves (fine), 4 GiB would be 2^20 + 2^18.
        const string ok = "eptcase 1\neptp\nmemory start=0 end=0x4000_0000 mt=WB\nidentity-map offset=0x1000 offset-from=0\n";
        const string tooMuch = "eptcase 1\neptp\nmemory start=0 end=0x1_4000_0000 mt=WB\nidentity-map offset=0x1000 offset-from=0\n";

        Assert.True(CaseParser.Parse(ok, "ok.ept").Succeeded);
        Assert.Contains("1310720 leaf entries", Assert.Single(CaseParser.Parse(tooMuch, "no.ept").Errors).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LargeIdentityMap_WithLargePages_IsAccepted()
    {
        // 2^48 bytes of 1G pages are 2^18 leaves; adjacent WB ranges count as one, the UC hole splits them.
        const string text = """
            eptcase 1
            eptp
            memory start=0x0 end=0x9f000 mt=WB
            memory start=0x9f000 end=0x1000_0000_0000 mt=WB
            memory start=0x1000_0000_0000 end=0x1000_0020_0000 mt=UC
            identity-map
            """;

        ParseResult result = CaseParser.Parse(text, "jos.ept");

        Assert.True(result.Succeeded, result.ErrorText());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AdjacentRangesOfOneType_CountAsOne(bool sameType)
    {
        // 2100 ranges of 2M each, starting 4K past a 2M boundary: apart, each needs 512 4K pages
        // (2100 * 512 > 2^20); merged, they are 2099 2M pages plus 1024 4K pages at the two ends.
        var sb = new StringBuilder("eptcase 1\ncpu page1g=0\neptp\n");
        for (ulong k = 0; k < 2100; k++)
        {
            ulong start = (k << 21) + 0x1000;
            string type = sameType || k % 2 == 0 ? "WB" : "UC";
            sb.Append($"memory start=0x{start:x} end=0x{start + (1UL << 21):x} mt={type}\n");
        }

        sb.Append("identity-map\n");

        ParseResult result = CaseParser.Parse(sb.ToString(), "adjacent.ept");

        Assert.Equal(sameType, result.Succeeded);
        if (!sameType)
        {
            Assert.Contains("1075200 leaf entries", Assert.Single(result.Errors).Message, StringComparison.Ordinal);
        }
    }
}
