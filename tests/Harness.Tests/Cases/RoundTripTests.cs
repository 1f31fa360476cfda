using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Tests.Cases;

public sealed class RoundTripTests
{
    [Fact]
    public void MinimizedReproducer_PrintsCanonically()
    {
        EptCase c = CaseParser.Parse(SpecExamples.MinimizedReproducer, "repro.ept").Case!;

        Assert.Equal(
            """
            eptcase 1
            # found by: eptfuzz fuzz --seed 0x5eed --max-total-time 60 (generator 1)
            # first divergence: step 5 (line 7): impl says ok hpa=0x40201000, model says violation qual=0x18a
            cpu maxphyaddr=46 page1g=1 ad=1
            eptp mt=WB walk=4 ad=1
            map gpa=0x200000 hpa=0x40200000 size=2M perm=rwx mt=WB
            protect gpa=0x201000 size=4K perm=r
            write gpa=0x201000 => violation qual=0x18a gpa=0x201000

            """,
            CasePrinter.Print(c));
    }

    [Fact]
    public void FreeForm_PrintsInCanonicalForm()
    {
        const string text = "#top\n\n  eptcase   1 # version\n#  two spaces kept   \neptp ad=0x1 walk=0x4\t mt=6\n# dropped: not a header\n"
            + "map perm=xwr size=0x200000 hpa=4096 gpa=0 # trailing\n"
            + "poke value=0x0007040600070406 hpa=0x10 => ok\nedit level=2 gpa=0x1_0000_0000 set=128\nprotect gpa=0 size=8192 perm=ux\nretype gpa=0 size=4096 mt=3\n";

        string printed = CasePrinter.Print(CaseParser.Parse(text, "t.ept").Case!);

        Assert.Equal(
            """
            eptcase 1
            # top
            #  two spaces kept
            eptp mt=WB walk=4 ad=1
            map gpa=0x0 hpa=0x1000 size=2M perm=rwx
            poke hpa=0x10 value=0x7_0406_0007_0406 => ok
            edit gpa=0x1_0000_0000 level=pde set=0x80
            protect gpa=0x0 size=0x2000 perm=xu
            retype gpa=0x0 size=4K mt=3

            """,
            printed);
    }

    [Fact]
    public void Expectation_PrintsAsWrittenAfterTheArrow()
    {
        Assert.Equal("violation qual=0x18a gpa=0x201000", CasePrinter.PrintExpectation(Expect.Violation(0x18a, new Gpa(0x201000))));
        Assert.Equal("ok hpa=0x40201000 mt=WB size=2M", CasePrinter.PrintExpectation(Expect.Translated(new Hpa(0x40201000), MemoryType.WB, 2UL << 20)));
        Assert.Equal("NotMergeable", CasePrinter.PrintExpectation(Expect.Result(ApiResult.NotMergeable)));
        Assert.Equal("vmentry fail", CasePrinter.PrintExpectation(Expect.VmEntry(false)));
    }

    [Theory]
    [InlineData(SpecExamples.MinimizedReproducer)]
    [InlineData(SpecExamples.EveryForm)]
    public void HandWritten_RoundTrips(string text)
    {
        EptCase parsed = CaseParser.Parse(text, "h.ept").Case!;

        AssertRoundTrip(parsed);
    }

    [Fact]
    public void RandomCases_RoundTrip()
    {
        var random = new RandomCases(0x5eed_cafe);
        for (int i = 0; i < 2000; i++)
        {
            EptCase c = random.Next();

            Assert.Empty(CaseValidator.Check(c));
            AssertRoundTrip(c);
        }
    }

    [Fact]
    public void Equality_IgnoresPositions_ButNotWhatWasWritten()
    {
        var map = new MapStep(new Gpa(0x1000), new Hpa(0x2000), 4096, EptPermissions.ReadAccess);

        Assert.Equal(map, map with { Position = new SourcePosition(7, 3) });
        Assert.Equal(map.GetHashCode(), (map with { Position = new SourcePosition(7, 3) }).GetHashCode());
        Assert.NotEqual(map, map with { MemoryType = MemoryType.WB });
        Assert.NotEqual<Step>(map, map with { Expectation = Expect.Ok });
        Assert.NotEqual(Expect.Ok with { Position = new SourcePosition(1, 1) }, Expect.Result(ApiResult.Unaligned));
        Assert.Equal<Step>(new UnmapStep(new Gpa(1), 2), new UnmapStep(new Gpa(1), 2) { Position = new SourcePosition(9, 9) });
        Assert.NotEqual<Step>(new UnmapStep(new Gpa(1), 2), new MergeStep(new Gpa(1), 2));
        Assert.NotEqual<Step>(AccessStep.Physical(AccessKind.Read, new Gpa(0)), AccessStep.Physical(AccessKind.Write, new Gpa(0)));

        var a = new EptCase([map], ["x"], "a.ept");
        var b = new EptCase([map with { Position = new SourcePosition(5, 1) }], ["x"], "b.ept");
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, b with { HeaderComments = [] });
        Assert.NotEqual(a, b with { Steps = [] });
    }

    [Fact]
    public void Validator_ReportsABuiltCaseThatCannotBeWritten()
    {
        var eptp = new EptpStep(WalkLength: 4);
        var bad = new EptCase([eptp, new AccessStep(AccessKind.Read, new Gpa(0), new Gva(0))]);
        var lossy = new EptCase([eptp], ["ends in a blank "]);
        var unordered = new EptCase([new VmEntryStep(), eptp]);

        Assert.Contains("needs exactly one of gpa= and gva=", Assert.Single(CaseValidator.Check(bad)).Message, StringComparison.Ordinal);
        Assert.Contains("does not survive printing", Assert.Single(CaseValidator.Check(lossy)).Message, StringComparison.Ordinal);
        Assert.Equal("<built>:2:1: vmentry comes before any eptp step (a case sets cpu, then eptp, then the rest)", Assert.Single(CaseValidator.Check(unordered)).ToString());
    }

    internal static void AssertRoundTrip(EptCase c)
    {
        string printed = CasePrinter.Print(c);
        ParseResult reparsed = CaseParser.Parse(printed, "printed.ept");
        Assert.True(reparsed.Succeeded, reparsed.ErrorText() + "\n" + printed);
        Assert.True(c.Equals(reparsed.Case), "parse(print(c)) != c; print(c) is:\n" + printed);
        Assert.Equal(printed, CasePrinter.Print(reparsed.Case));
    }
}
