using System.Text.RegularExpressions;
using EptFuzz.Harness.Cases;
using Xunit.Abstractions;

namespace EptFuzz.Harness.Tests.Cases;

/// <summary>
/// Hostile input (issue 4): 100,000 mutated case files. No exception may escape, every rejection
/// is located, an accepted mutant still round-trips, and the parser's allocations stay
/// proportional to the input.
/// </summary>
public sealed partial class MutationTests(ITestOutputHelper output)
{
    private const int Mutants = 100_000;

    private static readonly string[] Seeds =
    [
        SpecExamples.MinimizedReproducer,
        SpecExamples.EveryForm,
        "eptcase 1\neptp\nmemory start=0 end=0x9f000 mt=WB\nmemory start=0x100000 end=0x4000_0000 mt=WB\nidentity-map offset=0x1000 offset-from=0x100000\nread gpa=0x1000 => ok hpa=0x2000\n",
        "eptcase 1\ncpu mbec=1 adv-exit-info=1\neptp ad=1\ncontrols mbec=1\nmap gpa=0 hpa=0x1000 size=4K perm=ru\nguest paging=4level cr3=0 tables=0x1000-0x9000 nxe=1\ngmap gva=0x7000 gpa=0 size=4K perm=ux\nfetch gva=0x7000 cpl=3 => violation qual=0x404 gla=0x7000\n",
    ];

    [Fact]
    public void HundredThousandMutants_AreAcceptedOrRejectedWithLocatedErrors()
    {
        var mutator = new CaseMutator(0xbad_ca5e);
        int accepted = 0;
        int rejected = 0;
        var samples = new List<string>();
        for (int i = 0; i < Mutants; i++)
        {
            string seed = Seeds[i % Seeds.Length];
            ParseResult result;
            int length;
            int lines;
            long before = GC.GetAllocatedBytesForCurrentThread();
            if (i % 10 == 0)
            {
                byte[] bytes = mutator.FlipBytes(seed);
                length = bytes.Length;
                lines = bytes.Count((byte)'\n') + 1;
                result = CaseParser.Parse(bytes, "m.ept");
            }
            else
            {
                string text = mutator.Mutate(seed);
                length = text.Length;
                lines = text.Count('\n') + 1;
                result = CaseParser.Parse(text, "m.ept");
            }

            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            // Bounded memory: allocation grows with the input, never with the numbers in it.
            Assert.True(allocated <= 200L * length + (256 << 10), $"mutant {i}: {allocated} bytes allocated for {length} of input");
            if (result.Succeeded)
            {
                accepted++;
                Assert.Empty(result.Errors);
                RoundTripTests.AssertRoundTrip(result.Case);
                continue;
            }

            rejected++;
            if (rejected % 5000 == 0)
            {
                samples.Add(result.Errors[0].ToString());
            }

            Assert.NotEmpty(result.Errors);
            Assert.True(result.Errors.Count <= CaseLimits.MaxErrors);
            foreach (CaseError error in result.Errors)
            {
                Assert.InRange(error.Line, 1, lines);
                Assert.True(error.Column >= 1, error.ToString());
                Assert.Matches(Located(), error.ToString());
            }
        }

        output.WriteLine($"{accepted} accepted, {rejected} rejected; sample rejections:");
        foreach (string sample in samples)
        {
            output.WriteLine(sample);
        }

        // Both sides of the parser are exercised, or the test proves little.
        Assert.True(accepted > Mutants / 50, $"only {accepted} mutants were accepted");
        Assert.True(rejected > Mutants / 2, $"only {rejected} mutants were rejected");
    }

    [GeneratedRegex(@"^m\.ept:[1-9][0-9]*:[1-9][0-9]*: \S", RegexOptions.Singleline)]
    private static partial Regex Located();
}
