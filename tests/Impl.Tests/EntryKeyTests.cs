using System.Runtime.Intrinsics.X86;
using EptFuzz.Impl.Cpu;

namespace EptFuzz.Impl.Tests;

/// <summary>
/// The walk keys an entry by one bit-extract where the processor has a fast one and by shifts
/// elsewhere (AMD before Zen 3, Hygon, other architectures): both forms must give the same key,
/// or the walk classifies entries differently from machine to machine.
/// </summary>
public sealed class EntryKeyTests
{
    [Fact]
    public void ShiftForm_KeepsTheKeyBitsInOrder()
    {
        Assert.Equal(0x3FUL, EptEntryClasses.LevelKeyByShifts(0x3F));
        Assert.Equal(0x40UL, EptEntryClasses.LevelKeyByShifts(0x80));
        Assert.Equal(0x80UL, EptEntryClasses.LevelKeyByShifts(0x400));
        Assert.Equal(0UL, EptEntryClasses.LevelKeyByShifts(~EptEntryClasses.LevelKeyBits));
    }

    [Fact]
    public void BitExtractAndShifts_GiveTheSameKey_ForEveryKeyBitPattern()
    {
        if (!Bmi2.X64.IsSupported)
        {
            // Nothing to compare: the walk uses the shift form here (checked by the test above).
            return;
        }

        var rng = new SplitMix64(0xE47);
        for (ulong low = 0; low < 1UL << 11; low++)
        {
            // Every combination of bits 0..10, under random upper bits (address, SVE, A/D).
            ulong value = (rng.Next() & ~0x7FFUL) | low;
            Assert.Equal(EptEntryClasses.LevelKeyByShifts(value), EptEntryClasses.LevelKeyByBitExtract(value));
        }
    }
}
