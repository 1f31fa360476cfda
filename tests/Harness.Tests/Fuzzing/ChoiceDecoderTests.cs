using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Tests.Fuzzing;

/// <summary>The libFuzzer entry point's decoder: every byte string is a valid case, the same bytes the same case.</summary>
public class ChoiceDecoderTests
{
    /// <summary>Random byte strings of every length up to 4 KiB (libFuzzer's default -max_len), plus the degenerate ones.</summary>
    private static IEnumerable<byte[]> Inputs(int count)
    {
        yield return [];
        yield return new byte[4096];
        yield return Enumerable.Repeat((byte)0xFF, 4096).ToArray();
        yield return Enumerable.Repeat((byte)0x80, 300).ToArray();
        for (int b = 0; b < 256; b += 17)
        {
            yield return [(byte)b];
        }

        var rng = new Prng(0x11bf_0a2e);
        for (int i = 0; i < count; i++)
        {
            // Mostly short (where libFuzzer starts), some long, some of one repeated byte.
            int length = rng.Chance(70) ? rng.Below(64) : rng.Below(4097);
            var bytes = new byte[length];
            if (rng.Chance(10))
            {
                Array.Fill(bytes, (byte)rng.Below(256));
            }
            else
            {
                for (int j = 0; j < length; j++)
                {
                    bytes[j] = (byte)rng.Below(256);
                }
            }

            yield return bytes;
        }
    }

    [Fact]
    public void EveryByteString_DecodesToAValidCase_Deterministically()
    {
        int n = 0;
        foreach (byte[] input in Inputs(3000))
        {
            EptCase c = ChoiceDecoder.Decode(input);
            string text = CasePrinter.Print(c);
            Assert.Equal(GeneratorProfile.DefaultSteps, c.Steps.Length);
            var errors = CaseValidator.Check(c);
            Assert.True(errors.Count == 0, $"input {Convert.ToHexString(input)}: {string.Join("; ", errors)}\n{text}");
            var reparsed = CaseParser.Parse(text, "x.ept");
            Assert.True(reparsed.Succeeded, $"input {Convert.ToHexString(input)}: {reparsed.ErrorText()}");
            Assert.Equal(text, CasePrinter.Print(ChoiceDecoder.Decode(input.ToArray())));
            n++;
        }

        Assert.True(n > 3000);
    }

    [Fact]
    public void DecodedCases_Run_AndAgreeOnTheUnpatchedImplementation()
    {
        // The entry point's own targets: the SDM model against the implementation, intent checks on.
        var options = new RunOptions
        {
            Hypervisor = () => new EptFuzz.Impl.Hypervisor.EptHypervisor(),
            Targets = [new EptFuzz.Targets.Model.ModelTarget(), new EptFuzz.Impl.Target.ImplTarget()],
        };
        foreach (byte[] input in Inputs(300))
        {
            CaseResult result = CaseRunner.Run(ChoiceDecoder.Decode(input), options);
            Assert.True(result.Status == CaseStatus.Passed, $"input {Convert.ToHexString(input)}: {result.Status}: {result.Message}");
        }
    }

    [Fact]
    public void DifferentBytes_DecodeToDifferentCases()
    {
        var inputs = Inputs(500).Where(i => i.Length >= 16).ToList();
        int distinct = inputs.Select(i => CasePrinter.Print(ChoiceDecoder.Decode(i))).Distinct(StringComparer.Ordinal).Count();
        Assert.True(distinct >= inputs.Count * 95 / 100, $"{distinct} distinct cases from {inputs.Count} inputs");
    }

    [Fact]
    public void BytesPastTheLastChoice_AreIgnored_AndAChangedChoiceKeepsTheStepsBeforeIt()
    {
        var rng = new Prng(5);
        byte[] input = [.. Enumerable.Range(0, 4096).Select(_ => (byte)rng.Below(256))];
        var choices = Prng.FromChoices(input);
        EptCase full = CaseGenerator.Generate(choices, GeneratorProfile.Default, "x.ept");
        int read = choices.ChoicesRead;
        Assert.InRange(read, 64, input.Length - 1);

        // What the case never read does not matter.
        byte[] longer = [.. input.AsSpan(0, read), .. new byte[100]];
        Assert.Equal(CasePrinter.Print(full), CasePrinter.Print(CaseGenerator.Generate(Prng.FromChoices(longer), GeneratorProfile.Default, "x.ept")));

        // A change late in the bytes changes late decisions only: the first steps stay.
        string[] before = CasePrinter.Print(full).Split('\n');
        int changedCases = 0;
        for (int at = read - 1; at >= read - 40; at--)
        {
            byte[] changed = input.ToArray();
            changed[at] ^= 0xA5;
            string[] after = CasePrinter.Print(CaseGenerator.Generate(Prng.FromChoices(changed), GeneratorProfile.Default, "x.ept")).Split('\n');
            Assert.Equal(before[..12], after[..12]);
            changedCases += before.SequenceEqual(after) ? 0 : 1;
        }

        Assert.True(changedCases > 0, "none of the last 40 choice bytes changed the case");
    }

    [Fact]
    public void ChoiceMode_ReadsWhatTheBoundNeeds_AndStaysInBounds()
    {
        Assert.Equal(5, Prng.FromChoices([5]).Below(256));
        Assert.Equal(258 % 1000, Prng.FromChoices([0x01, 0x02]).Below(1000));
        Assert.Equal(0x0102030405060708UL, Prng.FromChoices([1, 2, 3, 4, 5, 6, 7, 8]).NextU64());
        var p = Prng.FromChoices([0xFF, 0xFF, 0xFF]);
        Assert.InRange(p.Below(7), 0, 6);
        Assert.Equal(1, p.ChoicesRead);
        Assert.InRange(p.Below(70_000UL), 0UL, 69_999UL);
        Assert.Equal(3, p.ChoicesRead); // a 17-bit bound needs three bytes, two were left: the rest from the fixed-seed stream

        // Past the bytes, the draws continue the same way every time.
        var a = Prng.FromChoices([]);
        var b = Prng.FromChoices([]);
        Assert.Equal(Enumerable.Range(0, 50).Select(_ => a.Below(1UL << 40)).ToArray(), Enumerable.Range(0, 50).Select(_ => b.Below(1UL << 40)).ToArray());
    }
}
